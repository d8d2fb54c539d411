"""Charset: labels to indices and back, padding included."""

import pytest
import torch

from captcha_lab.data.charset import PAD, REPORT36, UNKNOWN, UNKNOWN_SYMBOL, Charset, check_symbols
from captcha_lab.data.datamodule import CaptchaDataModule
from captcha_lab.errors import ConfigError

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


def test_decode_refuses_padding_and_writes_unknown_symbols():
    charset = Charset(SYMBOLS)
    assert charset.decode([0, UNKNOWN]) == "2" + UNKNOWN_SYMBOL
    with pytest.raises(ValueError, match=r"not symbol indices: \[0, -1\]"):
        charset.decode([0, PAD])  # not "2y": PAD would index the last symbol


@pytest.mark.parametrize("symbols", ["", "abca"])
def test_a_charset_is_refused_empty_or_with_a_symbol_twice(symbols):
    # A repeated symbol would give two indices one meaning, and decode only ever the first.
    with pytest.raises(ValueError, match="charset symbols must be non-empty and unique"):
        Charset(symbols)


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        ("", "charset.symbols: empty; "),  # was blamed on data.synthetic: "0 symbols make only 0 labels"
        ("abca", "charset.symbols: 'abca' holds 'a' twice"),
    ],
)
def test_a_configured_charset_is_refused_empty_or_with_a_symbol_twice(tmp_path, symbols, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        CaptchaDataModule(dir=str(tmp_path), symbols=symbols, synthetic=50)  # before any captcha is made
    assert not any(tmp_path.iterdir())


def test_a_checkpoints_alphabet_may_hold_a_blank_that_a_configured_one_may_not(tiny_dir):
    # charset=auto takes a blank from labels such as 'xx yy.png'; eval.py rebuilds its data with it.
    CaptchaDataModule(dir=str(tiny_dir), symbols=" 2345678bcdefgmnpwxy")
    with pytest.raises(ConfigError, match=r"^charset.symbols: '2345678 bcdefgmnpwxy' holds whitespace \(' '\)"):
        check_symbols("2345678 bcdefgmnpwxy")  # as train.py checks charset.symbols=...
