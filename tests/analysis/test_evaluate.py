"""Per-character scores (analysis.evaluate): reads of any length, the MISSING class in CSVs and figures."""

import csv

import matplotlib.pyplot as plt
import pytest
import torch

from captcha_lab.analysis.evaluate import (
    MISSING,
    char_scores,
    confusion_figure,
    confusion_labels,
    misread,
    misread_figure,
    write_char_csvs,
)
from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.data.labelled import LabelledImages


def test_char_scores_when_every_read_is_too_short():
    rows, confusion = char_scores("abc", ["abc", "cab"], ["ab", ""], missing=True)
    assert confusion.shape == (4, 4) and confusion[:, 3].sum() == 4  # c, then c, a, b read as nothing
    assert [r["support"] for r in rows] == [2, 2, 2] and [r["recall"] for r in rows] == [0.5, 0.5, 0]


def test_char_scores_count_reads_of_another_length():
    # CTC reads may end early or run on; every label character must still be scored.
    truths = ["abc", "abc", "bca", "cab"]
    preds = ["ab", "abc", "bcaa", "cbb"]  # too short, right, too long, a misread
    rows, confusion = char_scores("abc", truths, preds, missing=True)
    assert [r["support"] for r in rows] == [4, 4, 4]  # every label character: 12, not 6
    # (4, 4): rows = truth a, b, c, MISSING; the last read's a -> b, the first's absent c, the third's extra a.
    assert confusion.tolist() == [[3, 1, 0, 0], [0, 4, 0, 0], [0, 0, 3, 1], [1, 0, 0, 0]]
    assert [(r["precision"], r["recall"]) for r in rows] == [(0.75, 0.75), (0.8, 1.0), (1.0, 0.75)]
    # Position by position, as the system's char_acc: right label characters / label characters.
    assert float(confusion.trace()) / sum(r["support"] for r in rows) == pytest.approx(10 / 12)
    labels = confusion_labels("abc", missing=True)
    assert labels == ["a", "b", "c", MISSING] and MISSING not in CAPTCHA_V2

    # Fixed heads (no length errors) keep their (C, C) matrix: the same numbers without MISSING.
    fixed, fixed_confusion = char_scores("abc", ["abc", "cab"], ["abc", "cbb"], missing=False)
    with_missing, confusion = char_scores("abc", ["abc", "cab"], ["abc", "cbb"], missing=True)
    assert fixed == with_missing and fixed_confusion.tolist() == confusion[:3, :3].tolist()
    assert confusion[3].sum() == confusion[:, 3].sum() == 0
    with pytest.raises(ValueError, match="need missing=True"):  # not silently dropped, as they were
        char_scores("abc", truths, preds, missing=False)


def test_missing_class_is_labelled_in_csv_and_figure(tmp_path):
    rows, confusion = char_scores("abc", ["abc"], ["ab"], missing=True)
    labels = confusion_labels("abc", missing=True)
    write_char_csvs(tmp_path, labels, rows, confusion)
    with open(tmp_path / "confusion_matrix.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["true\\pred", "a", "b", "c", MISSING]
    assert [row[0] for row in table[1:]] == labels and table[3][1:] == ["0", "0", "0", "1"]  # c read as nothing
    fig = confusion_figure(labels, confusion, "test")
    axes = fig.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == [t.get_text() for t in axes.get_yticklabels()] == labels
    plt.close(fig)


@pytest.mark.parametrize("channels", [1, 3])
def test_misread_grid_shows_the_images_as_the_net_saw_them(channels):
    images = torch.rand(2, channels, 5, 20)
    data = LabelledImages(images, torch.zeros(2, 5, dtype=torch.long), ["a.png", "b.png"])
    fig = misread_figure(data, ["abcde", "bcdef"], ["abcde", "bcdeg"])
    (shown,) = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert shown.shape == ((5, 20) if channels == 1 else (5, 20, 3))  # colour kept, not its red channel
    torch.testing.assert_close(torch.as_tensor(shown.data).reshape(5, 20, -1), images[1].permute(1, 2, 0))
    plt.close(fig)


def test_a_read_where_the_label_has_a_symbol_the_net_cannot_write_is_a_false_positive():
    # A test folder's label "?b" (? outside the alphabet) read as "ab": that "a" is a wrong read of
    # "a", as a symbol read past a label's end is; dropped, it lifted a's precision to 1.
    rows, confusion = char_scores("ab", ["ab", "\ufffdb"], ["ab", "ab"], missing=True)
    assert {r["char"]: r["precision"] for r in rows} == {"a": 0.5, "b": 1.0}
    assert confusion[2].tolist() == [1, 0, 0]  # the MISSING row: no symbol of the alphabet there
    assert [r["support"] for r in rows] == [1, 2]
    with pytest.raises(ValueError, match="another length or symbol need missing=True"):
        char_scores("ab", ["\ufffdb"], ["ab"], missing=False)


def test_only_captchas_read_otherwise_are_misread_and_a_symbol_never_predicted_has_precision_0():
    assert misread(["ab", "cd", "ef"], ["ab", "cx", "efg"]) == [1, 2]
    rows, _ = char_scores("ab", ["ab"], ["aa"], missing=False)
    assert rows[1]["char"] == "b" and (rows[1]["precision"], rows[1]["recall"]) == (0.0, 0.0)  # not 1.0
