"""Captcha metrics: per-character, whole-sequence and per-position accuracy on padded index rows,
and the score that picks best.ckpt."""

import torch
from torchmetrics import Metric

from captcha_lab.data.charset import PAD


class CaptchaAccuracy(Metric):
    """char_acc, seq_acc and acc_pos1..acc_posN of reads against labels, both (B, W) symbol
    indices padded with PAD (a label's symbol the net cannot write is UNKNOWN, never read, so
    always wrong). char_acc and acc_posK skip positions the label does not have; seq_acc needs
    every position equal, so a read that is too long or too short is wrong. N = `positions`
    (0: no per-position scores). One set of counts serves all of them: one cheap update per batch,
    which the training step pays at every step."""

    full_state_update = False

    def __init__(self, width: int, prefix: str, positions: int = 0):
        super().__init__()
        self.width, self.prefix, self.positions = width, prefix, positions
        self.add_state("right", torch.zeros(width, dtype=torch.long), dist_reduce_fx="sum")  # per position
        self.add_state("count", torch.zeros(width, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("sequences_right", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("sequences", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @property
    def names(self) -> list[str]:
        return [self.prefix + n for n in ("char_acc", "seq_acc")] + [
            f"{self.prefix}acc_pos{k + 1}" for k in range(self.positions)
        ]

    def update(self, reads: torch.Tensor, labels: torch.Tensor) -> None:
        if reads.shape != labels.shape or reads.shape[1] != self.width:
            raise ValueError(f"reads and labels must both be (B, {self.width}), got {reads.shape} and {labels.shape}")
        equal, present = reads == labels, labels != PAD  # (B, W)
        self.right += (equal & present).sum(0)
        self.count += present.sum(0)
        self.sequences_right += equal.all(1).sum()
        self.sequences += len(labels)

    def compute(self) -> dict[str, torch.Tensor]:
        # A position no label reaches scores 0, as torchmetrics' accuracies do for no samples.
        def ratio(right, count):
            return (right / count.clamp(min=1)).float()

        values = [ratio(self.right.sum(), self.count.sum()), ratio(self.sequences_right, self.sequences)]
        values += [ratio(self.right[k], self.count[k]) for k in range(self.positions)]
        return dict(zip(self.names, values, strict=True))


def ckpt_score(seq_acc: torch.Tensor, char_acc: torch.Tensor) -> torch.Tensor:
    """What best.ckpt is chosen by: seq_acc, ties (e.g. all 0 early on) broken by char_acc."""
    # In float64: two epochs' char_acc differ by ~1e-3 or less, so their 1e-6 terms by ~1e-9, below
    # float32's steps near 1 (6e-8): the tie would stay a tie, and Lightning keeps the earlier epoch.
    return seq_acc.double() + 1e-6 * char_acc.double()
