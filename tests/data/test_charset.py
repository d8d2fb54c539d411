"""Charset: labels to indices and back, padding included."""

import torch

from captcha_lab.data.charset import PAD, REPORT36, Charset

SYMBOLS = "2345678bcdefgmnpwxy"


def test_label_round_trip():
    charset = Charset()
    assert charset.decode(charset.encode("2b827")) == "2b827"
    assert Charset(REPORT36).encode("a9") == [0, 35]
    assert charset.unknown("2b8a7") == {"a"}


def test_texts_drop_padding_of_shorter_labels():
    charset = Charset(SYMBOLS)
    padded = torch.tensor([charset.encode("2b82") + [PAD], charset.encode("2b827")])
    assert charset.texts(padded) == ["2b82", "2b827"]  # PAD (-1) must not read as the last symbol
