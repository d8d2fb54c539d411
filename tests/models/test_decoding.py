"""Decoding families: greedy CTC decoding and the CTC loss on hand-made frames."""

import itertools

import torch
import torch.nn.functional as F

from captcha_lab.data.charset import PAD
from captcha_lab.models.decoding import ctc_loss, greedy_decode
from captcha_lab.models.report_cnn import ReportCNN

BLANK = 3  # 3 symbols + blank


def frames(*path: int) -> torch.Tensor:
    """One sequence whose best path is `path`: (1, T, 4) log-probabilities."""
    logits = torch.full((1, len(path), BLANK + 1), -10.0)
    logits[0, torch.arange(len(path)), torch.tensor(path)] = 10.0
    return F.log_softmax(logits, -1)


def test_greedy_merges_repeats_and_drops_blanks():
    decoded, confidence = greedy_decode(frames(BLANK, 0, 0, BLANK, 1, 1, 1, BLANK), width=4)
    assert decoded.tolist() == [[0, 1, PAD, PAD]]
    assert 0.99 < confidence.item() <= 1.0


def test_greedy_keeps_repeats_split_by_a_blank():
    decoded, _ = greedy_decode(frames(2, 2, BLANK, 2, 0, BLANK, 0), width=5)
    assert decoded.tolist() == [[2, 2, 0, 0, PAD]]


def test_greedy_all_blank_is_empty_and_long_reads_are_cut():
    assert greedy_decode(frames(BLANK, BLANK), width=2)[0].tolist() == [[PAD, PAD]]
    assert greedy_decode(frames(0, 1, 2, 0, 1), width=3)[0].tolist() == [[0, 1, 2]]


def test_greedy_decodes_a_batch_row_by_row():
    # The batched scatter against the rule written out per row: merge runs, drop blanks, cut.
    torch.manual_seed(0)
    log_probs = F.log_softmax(torch.randn(64, 12, BLANK + 1) * 3, -1)
    for width in (2, 5, 13):
        decoded, _ = greedy_decode(log_probs, width)
        for row, path in zip(decoded.tolist(), log_probs.argmax(-1).tolist(), strict=True):
            read = [k for k, _ in itertools.groupby(path) if k != BLANK][:width]
            assert row == read + [PAD] * (width - len(read))


def test_ctc_loss_prefers_the_right_label_and_ignores_padding():
    log_probs = frames(BLANK, 0, BLANK, 0, 1)
    right, wrong = torch.tensor([[0, 0, 1, PAD]]), torch.tensor([[1, 0, 0, PAD]])
    assert ctc_loss(log_probs, right) < 0.01 < ctc_loss(log_probs, wrong)
    torch.testing.assert_close(ctc_loss(log_probs, right), ctc_loss(log_probs, right[:, :3]))


def test_ctc_loss_of_a_label_longer_than_the_frames_poisons_no_batch():
    # Three symbols need three frames; two give no alignment: an infinite loss, zeroed.
    assert ctc_loss(frames(0, BLANK), torch.tensor([[0, 1, 2]])).item() == 0.0
    batch = torch.cat([frames(0, BLANK), frames(1, BLANK)])
    loss = ctc_loss(batch, torch.tensor([[0, 1, 2], [0, PAD, PAD]]))  # the second row possible, and wrong
    assert torch.isfinite(loss) and loss.item() > 1  # that row still counts


def test_label_smoothing_reaches_a_fixed_head_nets_loss():
    net = ReportCNN(num_classes=4, length=2)
    logits = torch.full((1, 2, 4), -10.0)
    logits[0, :, 0] = 10.0  # confident and right: plain cross-entropy ~0, smoothed far from it
    targets = torch.tensor([[0, 0]])
    assert net.loss(logits, targets, 0.1).item() > 0.1 > net.loss(logits, targets).item()
