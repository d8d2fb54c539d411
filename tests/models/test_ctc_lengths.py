"""CTC reads held to the label lengths (models.ctc_lengths; decoding.CTC.decode, inference.reader)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from captcha_lab.data.charset import CAPTCHA_V2, PAD
from captcha_lab.inference.reader import Reader
from captcha_lab.models.crnn import CRNN
from captcha_lab.models.ctc_lengths import best_paths, fit_lengths, symbol_counts
from captcha_lab.models.decoding import collapse, fit_path_lengths, greedy_decode
from captcha_lab.models.report_cnn import ReportCNN

BLANK = 3  # 3 symbols + blank


def path_score(log_probs: np.ndarray, path) -> float:
    return float(log_probs[np.arange(len(path)), list(path)].sum())


def test_best_paths_is_the_best_path_of_an_allowed_length_by_brute_force():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for _ in range(150):
        frames, classes = int(rng.integers(1, 7)), int(rng.integers(2, 5))
        lp = torch.randn(1, frames, classes).mul(2).log_softmax(-1).numpy()
        shortest = int(rng.integers(0, frames + 1))
        longest = int(rng.integers(shortest, frames + 1))
        allowed = [
            p
            for p in itertools.product(range(classes), repeat=frames)
            if shortest <= symbol_counts(np.array([p]), classes - 1)[0] <= longest
        ]
        if not allowed:  # e.g. 2 symbols in 2 frames of a 1-symbol alphabet: equal neighbours merge
            continue
        found = best_paths(lp, shortest, longest)[0]
        assert shortest <= symbol_counts(found[None], classes - 1)[0] <= longest
        assert path_score(lp[0], found) == pytest.approx(max(path_score(lp[0], p) for p in allowed), abs=1e-9)


def test_any_length_allowed_scores_like_the_greedy_path():
    torch.manual_seed(0)
    lp = torch.randn(16, 25, 20).mul(3).log_softmax(-1).numpy()
    found = best_paths(lp, 0, 25)
    assert np.allclose(np.take_along_axis(lp, found[..., None], -1)[..., 0].sum(1), lp.max(-1).sum(1))


def doubled_letter() -> torch.Tensor:
    """(1, 7, 4): the best frames read "0 0 0 1 2 2 -" = "012", but a blank nearly as likely at
    the second frame splits the 0s: "0012"."""
    logits = torch.full((1, 7, BLANK + 1), -8.0)
    for t, c in enumerate([0, 0, 0, 1, 2, 2, BLANK]):
        logits[0, t, c] = 4.0
    logits[0, 1, BLANK] = 3.5
    return F.log_softmax(logits, -1)


def test_a_read_too_short_takes_its_best_path_of_a_trained_length():
    lp = doubled_letter()
    assert greedy_decode(lp, 5)[0].tolist() == [[0, 1, 2, PAD, PAD]]
    best, index = fit_path_lengths(lp, *lp.max(-1), 4, 4)
    read, confidence = collapse(best, index, BLANK, 5)
    assert read.tolist() == [[0, 0, 1, 2, PAD]]
    assert confidence.item() == pytest.approx(lp[0].gather(-1, index[0, :, None]).sum().exp().item())
    # The NumPy reader (ONNX Runtime's) reads the same.
    reader = Reader("abc", 4, "ctc", min_length=4)
    assert reader.decode(*(t.numpy() for t in (*lp.max(-1), lp)))[0].text == "aabc"
    assert Reader("abc", 4, "ctc").decode(*(t.numpy() for t in lp.max(-1)))[0].text == "abc"  # none: greedy


def test_a_read_too_long_takes_its_best_path_of_a_trained_length():
    # The best frames read "0 - 0 1 2 -" = "0012", but the blank at the second frame is barely ahead
    # of a 0 that merges the 0s: "012", the only length of 2-3 this close.
    logits = torch.full((1, 6, BLANK + 1), -8.0)
    for t, c in enumerate([0, BLANK, 0, 1, 2, BLANK]):
        logits[0, t, c] = 4.0
    logits[0, 1, 0] = 3.5
    lp = F.log_softmax(logits, -1)
    assert greedy_decode(lp, 5)[0].tolist() == [[0, 0, 1, 2, PAD]]
    best, index = fit_path_lengths(lp, *lp.max(-1), 2, 3)
    assert index[0].tolist() == best_paths(lp.numpy(), 2, 3)[0].tolist()
    assert collapse(best, index, BLANK, 5)[0].tolist() == [[0, 1, 2, PAD, PAD]]


def test_rows_of_a_trained_length_keep_their_greedy_path():
    torch.manual_seed(0)
    lp = torch.randn(32, 25, 20).mul(3).log_softmax(-1).numpy()
    index = lp.argmax(-1)
    n = symbol_counts(index, 19)
    shortest = int(np.median(n))  # about half the rows in range
    fitted = fit_lengths(lp, index, shortest, shortest + 1)
    kept = (n >= shortest) & (n <= shortest + 1)
    assert kept.any() and not kept.all()
    assert np.array_equal(fitted[kept], index[kept])
    assert ((symbol_counts(fitted, 19) >= shortest) & (symbol_counts(fitted, 19) <= shortest + 1)).all()


def test_a_crnn_holds_reads_to_min_length_and_length():
    torch.manual_seed(0)
    net = CRNN(num_classes=len(CAPTCHA_V2), length=6, min_length=4, rnn="none").eval()
    assert net.spec["min_length"] == 4 and net.read_lengths == (4, 6)
    with torch.no_grad():
        logits = net(torch.rand(16, 1, 50, 200))
    lengths = (net.decode(logits, 7)[0] != PAD).sum(1)
    assert ((lengths >= 4) & (lengths <= 6)).all()
    greedy = (net.decode(logits, 7, fit_lengths=False)[0] != PAD).sum(1)
    assert ((greedy < 4) | (greedy > 6)).any()  # an untrained net: the fit had work to do
    assert CRNN(num_classes=19).read_lengths is None  # a checkpoint's spec from before min_length


def test_min_length_out_of_range_is_refused():
    with pytest.raises(ValueError, match="min_length"):
        CRNN(num_classes=19, length=5, min_length=6)
    # Per-position nets read `length` symbols; train.py refuses them labels of several lengths.
    assert "min_length" not in ReportCNN(num_classes=19, length=5, min_length=5).spec


def test_no_allowed_read_keeps_the_greedy_path_and_no_rows_is_fine():
    torch.manual_seed(0)
    lp = torch.randn(2, 2, 4).log_softmax(-1).numpy()
    assert np.array_equal(best_paths(lp, 3, 3), lp.argmax(-1))  # 2 frames cannot read 3 symbols
    assert best_paths(lp[:0], 1, 2).shape == (0, 2)


def test_a_diverged_net_reads_garbage_not_an_error():
    # A run whose weights went NaN (lr far too high) validates on NaN log-probabilities: each row
    # still gets a path of valid classes, as greedy decoding gives, and the run ends with 0.
    lp = np.full((3, 25, 20), np.nan, np.float32)
    lp[1, :, :] = np.log(1 / 20)
    lp[2, 3, 5] = 0.0
    path = best_paths(lp, 4, 5)
    assert path.shape == (3, 25) and ((path >= 0) & (path < 20)).all()
    crnn = CRNN(num_classes=19, rnn="none", min_length=4)
    with torch.no_grad():
        for p in crnn.parameters():
            p.fill_(float("nan"))
    index, _ = crnn.eval().decode(crnn(torch.rand(2, 1, 50, 200)), 6)
    assert index.shape == (2, 6)
