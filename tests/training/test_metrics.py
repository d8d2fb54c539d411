"""Captcha metrics on padded reads (wrong length is wrong) and the score best.ckpt is chosen by."""

import pytest
import torch

from captcha_lab.data.charset import PAD
from captcha_lab.models.crnn import CRNN
from captcha_lab.training.metrics import ckpt_score
from captcha_lab.training.system import CaptchaSystem

SYMBOLS = "2345678bcdefgmnpwxy"


def crnn_system(length: int) -> CaptchaSystem:
    return CaptchaSystem(CRNN(num_classes=19, length=length, channels=(8, 8, 8), hidden=8), symbols=SYMBOLS)


@pytest.mark.parametrize("seq_acc", [0.0, 0.5, 0.977])
def test_ckpt_score_breaks_ties_by_char_acc_at_any_seq_acc(seq_acc):
    seq = torch.tensor(seq_acc)  # float32, as torchmetrics computes it
    assert ckpt_score(seq, torch.tensor(0.9908)) > ckpt_score(seq, torch.tensor(0.9897))
    assert ckpt_score(seq + 1 / 174, torch.tensor(0.0)) > ckpt_score(seq, torch.tensor(1.0))


def test_metrics_for_variable_length_labels():
    system = crnn_system(length=6)
    labels, blank = ["2b8", "cdef", "gmnpw", "xy2345"], 19
    logits = torch.full((4, 25, 20), -10.0)
    logits[:, :, blank] = 10.0
    for row, text in enumerate(labels):  # each symbol on every 3rd frame, blanks between
        for k, index in enumerate(system.charset.encode(text)):
            logits[row, 3 * k + 1, index], logits[row, 3 * k + 1, blank] = 10.0, -10.0
    y = torch.tensor([system.charset.encode(t) + [PAD] * (6 - len(t)) for t in labels])
    system.metrics["val_metrics"](system._as_classes(system.decode(logits)[0]), system._as_classes(y))
    metrics = system.metrics["val_metrics"].compute()
    assert metrics["val/seq_acc"] == 1 and metrics["val/char_acc"] == 1 and metrics["val/acc_pos6"] == 1


def test_metrics_count_a_too_long_read_wrong():
    system = crnn_system(length=5)
    target = torch.tensor([[0, 1, 2, 3, PAD]])
    for read, seq_acc in [([0, 1, 2, 3, PAD, PAD], 1.0), ([0, 1, 2, 3, 4, PAD], 0.0), ([0, 1, 2, PAD, PAD, PAD], 0.0)]:
        metrics = system.metrics["test_metrics"]
        metrics.reset()
        metrics(system._as_classes(torch.tensor([read])), system._as_classes(target))
        assert metrics.compute()["test/seq_acc"] == seq_acc


def test_position_accuracies_stay_apart_after_equal_first_batch():
    # Two positions equally right in the first batch must not share state afterwards
    # (torchmetrics' compute groups would merge them).
    system = crnn_system(length=2)
    metrics = system.metrics["val_metrics"]
    target = torch.tensor([[0, 1]])
    metrics.update(system._as_classes(torch.tensor([[0, 1]])), system._as_classes(target))  # both right
    metrics.update(system._as_classes(torch.tensor([[0, 2]])), system._as_classes(target))  # 2nd wrong
    values = metrics.compute()
    assert values["val/acc_pos1"] == 1 and values["val/acc_pos2"] == 0.5
