"""Captcha metrics on padded reads (wrong length is wrong) and the score best.ckpt is chosen by."""

import pytest
import torch

from captcha_lab.data.charset import PAD, UNKNOWN
from captcha_lab.models.crnn import CRNN
from captcha_lab.training.metrics import CaptchaAccuracy, ckpt_score
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
    system.metrics["val_metrics"](system._padded(system.decode(logits)[0]), system._padded(y))
    metrics = system.metrics["val_metrics"].compute()
    assert metrics["val/seq_acc"] == 1 and metrics["val/char_acc"] == 1 and metrics["val/acc_pos6"] == 1


def test_metrics_count_a_too_long_read_wrong():
    system = crnn_system(length=5)
    target = torch.tensor([[0, 1, 2, 3, PAD]])
    for read, seq_acc in [([0, 1, 2, 3, PAD, PAD], 1.0), ([0, 1, 2, 3, 4, PAD], 0.0), ([0, 1, 2, PAD, PAD, PAD], 0.0)]:
        metrics = system.metrics["test_metrics"]
        metrics.reset()
        metrics(system._padded(torch.tensor([read])), system._padded(target))
        assert metrics.compute()["test/seq_acc"] == seq_acc


def test_position_accuracies_stay_apart_after_equal_first_batch():
    # Two positions equally right in the first batch must not share state afterwards.
    system = crnn_system(length=2)
    metrics = system.metrics["val_metrics"]
    target = torch.tensor([[0, 1]])
    metrics.update(system._padded(torch.tensor([[0, 1]])), system._padded(target))  # both right
    metrics.update(system._padded(torch.tensor([[0, 2]])), system._padded(target))  # 2nd wrong
    values = metrics.compute()
    assert values["val/acc_pos1"] == 1 and values["val/acc_pos2"] == 0.5


def test_unwritable_label_symbols_count_wrong_and_shapes_are_checked():
    system = crnn_system(length=3)
    metrics = system.metrics["test_metrics"]
    read, label = torch.tensor([[0, 1, 2]]), torch.tensor([[0, UNKNOWN, 2]])
    metrics.update(system._padded(read), system._padded(label))
    values = metrics.compute()
    assert values["test/char_acc"] == pytest.approx(2 / 3) and values["test/seq_acc"] == 0
    assert values["test/acc_pos2"] == 0 and values["test/acc_pos3"] == 1
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        metrics.update(read, label)  # not padded to the longest label + 1


def test_a_position_no_label_reaches_scores_zero_not_nan():
    metric = CaptchaAccuracy(4, "v/", positions=3)
    metric.update(torch.tensor([[0, 1, PAD, PAD]]), torch.tensor([[0, 1, PAD, PAD]]))
    scores = metric.compute()
    assert scores["v/acc_pos3"].item() == 0.0 and scores["v/acc_pos1"].item() == 1.0
