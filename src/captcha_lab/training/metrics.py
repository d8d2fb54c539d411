"""Captcha metrics: per-character, whole-sequence and per-position accuracy on padded index rows,
and the score that picks best.ckpt."""

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassExactMatch


class PositionAccuracy(MulticlassAccuracy):
    """Accuracy of one character position (the report's per-head 'dense_k accuracy')."""

    def __init__(self, position: int, num_classes: int, ignore_index: int | None = None):
        super().__init__(num_classes=num_classes, average="micro", ignore_index=ignore_index, validate_args=False)
        self.position = position

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update(preds[:, self.position], target[:, self.position])


def captcha_metrics(num_classes: int, length: int, prefix: str) -> MetricCollection:
    """Metrics on (B, W) index rows where class `num_classes` marks 'no character here' (after the
    end of a label or of a read) and `num_classes + 1` a label's symbol that the net cannot write
    (never read, so always wrong). char_acc and acc_posK skip positions the label does not have;
    seq_acc needs every position equal, so a read that is too long or too short is wrong."""
    classes, pad = num_classes + 2, num_classes
    metrics = {
        "char_acc": MulticlassAccuracy(classes, average="micro", ignore_index=pad, validate_args=False),
        "seq_acc": MulticlassExactMatch(classes, validate_args=False),
    }
    metrics.update({f"acc_pos{i + 1}": PositionAccuracy(i, classes, pad) for i in range(length)})
    # No compute groups: they share the state of metrics whose states are equal after the first
    # update, which two positions' accuracies can be by chance (same number right), and would
    # then report one position's score for both.
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)


def ckpt_score(seq_acc: torch.Tensor, char_acc: torch.Tensor) -> torch.Tensor:
    """What best.ckpt is chosen by: seq_acc, ties (e.g. all 0 early on) broken by char_acc."""
    # In float64: in float32 the 1e-6 * char_acc would be lost below seq_acc's last bit once
    # seq_acc > ~0.06 (float32 steps are 6e-8 near 1), and Lightning keeps the earlier epoch of a tie.
    return seq_acc.double() + 1e-6 * char_acc.double()
