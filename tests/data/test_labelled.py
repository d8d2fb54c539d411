"""Labelled folders: bad labels and unreadable files skipped and named; unusable folders refused."""

import logging
import os

import pytest

from captcha_lab.data.charset import PAD, UNKNOWN, Charset
from captcha_lab.data.images import printable
from captcha_lab.data.labelled import load_folder
from captcha_lab.errors import DataError

from .image_files import mixed_copy, png_header, save

CHARSET = Charset()


def test_bad_labels_skipped_with_one_counted_warning_per_reason(tmp_path, caplog):
    not_utf8 = os.fsdecode(b"ab\xff27.png")  # the log file's UTF-8 cannot hold its surrogate
    for name in ["2b827.png", "ab827.png", "2b8272.png", "2b82.png", "nnnnn.png", not_utf8]:
        save(tmp_path / name, "L")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        data = load_folder(tmp_path, CHARSET, length=5)
    assert data.names == ["2b827.png", "nnnnn.png"]
    assert data.images.shape == (2, 1, 50, 200) and 0 <= data.images.min() and data.images.max() <= 1
    assert data.targets.tolist()[0] == CHARSET.encode("2b827")
    messages = [r.getMessage() for r in caplog.records]
    # With a named charset most of another site's folder may be skipped: the warning says what reads it all.
    assert any(
        "1 file(s) with characters outside the charset (charset=auto takes the folder's own symbols): ab827.png" in m
        for m in messages
    )
    assert any("1 file(s) whose name is not UTF-8: ab\\xff27.png" in m for m in messages)
    assert printable("2b\t82\n7.png") == "2b\\x0982\\x0a7.png"  # predict.py's stdout: one line, 3 fields
    # A name that holds a backslash prints apart from one with a tab; Unicode's line breaks are escaped.
    assert printable("2b\\x0982.png") == "2b\\\\x0982.png" != printable("2b\t82.png")
    assert printable("a\u2028b\x85.png") == "a\\u2028b\\u0085.png"
    assert printable("a\x85.png") != printable(os.fsdecode(b"a\x85.png"))  # a C1 character, an undecodable byte
    assert any("2 file(s) whose label is not 5 characters long" in m for m in messages)


def test_a_test_folder_whose_labels_all_hold_unknown_symbols_is_refused(tmp_path):
    # Every image would score as a misread and the loss of none: eval.py wrote test/loss=nan, exit 0.
    for name in ["ab827.png", "zz827.png"]:
        save(tmp_path / name, "L")
    with pytest.raises(DataError, match=f"^{tmp_path}: none of its 2 labels uses only the model's symbols"):
        load_folder(tmp_path, CHARSET, length=5, keep_unknown=True)
    save(tmp_path / "2b827.png", "L")  # one the model can read: scored, the others as misreads
    assert len(load_folder(tmp_path, CHARSET, length=5, keep_unknown=True).names) == 3


def test_a_test_folder_keeps_every_label_as_a_target(tmp_path, caplog):
    # keep_unknown (data.test_dir): labels of another length or with unknown symbols are scored,
    # not skipped, so the test accuracy counts every image.
    for name in ["2b827.png", "ab827.png", "2b8272.png", "2b82727.png", "2b82.png"]:
        save(tmp_path / name, "L")
    with caplog.at_level(logging.WARNING):
        data = load_folder(tmp_path, CHARSET, length=5, keep_unknown=True)
    targets = dict(zip(data.names, data.targets.tolist(), strict=True))
    # One column more than the model reads (as the metrics compare reads): a label one longer is
    # kept whole, so its first five positions score as they read; a longer one ends in UNKNOWN.
    assert targets["2b827.png"] == [*CHARSET.encode("2b827"), PAD]
    assert targets["ab827.png"] == [UNKNOWN, *CHARSET.encode("b827"), PAD]
    assert targets["2b82.png"] == [*CHARSET.encode("2b82"), PAD, PAD]
    assert targets["2b8272.png"] == CHARSET.encode("2b8272")
    assert targets["2b82727.png"] == [*CHARSET.encode("2b827"), UNKNOWN]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "1 label(s) hold symbols the model cannot write, scored as misreads: ab827.png" in messages
    assert (
        "3 label(s) are not 5 characters long, as the model reads; scored: 2b82.png, 2b8272.png, 2b82727.png"
        in messages
    )


def test_unreadable_files_are_skipped_and_named(tmp_path, tiny_dir, caplog):
    mixed = mixed_copy(tiny_dir, tmp_path / "mixed")
    with caplog.at_level(logging.WARNING):
        data = load_folder(mixed, CHARSET, 5)
    assert len(data) == len(list(tiny_dir.glob("*.png")))
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipped 4 file(s) that could not be read" in warning
    for name in ("22222.png", "33333.png", "44444.png", "55555.png: cannot be opened"):
        assert name in warning


def test_missing_and_empty_dirs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data folder not found: .*nope"):
        load_folder(tmp_path / "nope", CHARSET, 5)
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path, CHARSET, 5)


def test_only_non_images_and_all_invalid_folders_are_errors(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "2b827.txt").write_text("x")
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path / "text", CHARSET, 5)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "2b827.png").write_bytes(b"")  # unreadable
    (tmp_path / "bad" / "aaaaa.png").write_bytes(png_header(200, 50))  # unknown characters
    (tmp_path / "bad" / "2b8.png").write_bytes(png_header(200, 50))  # wrong length
    with pytest.raises(DataError, match="no usable captcha images in .*bad"):
        load_folder(tmp_path / "bad", CHARSET, 5)
