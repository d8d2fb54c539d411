"""Decoding families: how a net's logits become a loss and texts. A net inherits one
(`PerPosition` or `CTC`), so the training system, the exporter and the readers ask the net
instead of dispatching on its kind.

Both take logits and give (B, width) symbol indices padded with PAD; `width` is one more than the
longest label, so a too-long read stays wrong."""

import torch
import torch.nn.functional as F

from captcha_lab.data.charset import PAD


class PerPosition:
    """One class per character position: (B, L, C) logits; reads exactly L symbols."""

    decoding = "per_position"  # recorded in ONNX exports: the reader decodes the same way
    variable_length = False
    label_smoothing = True  # whether the loss takes label smoothing
    deterministic_on_cuda = True

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits, dim=-1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        # Mean over the L heads of each head's cross-entropy (Keras sums them; the mean keeps the
        # learning rate independent of the captcha length). cross_entropy re-normalizes
        # log-probabilities to themselves, so this is NLL plus optional label smoothing.
        return F.cross_entropy(
            self.log_probs(logits).flatten(0, 1),  # (B * L, C)
            targets.flatten(),
            ignore_index=PAD,
            label_smoothing=label_smoothing,
        )

    def decode(self, logits: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) logits -> (B, width) symbol indices padded with PAD, and (B,) confidences
        (the product of the per-position maxima)."""
        best, index = self.log_probs(logits).max(-1)  # (B, L)
        return F.pad(index, (0, width - index.shape[1]), value=PAD), best.sum(-1).exp()


class CTC:
    """Per-frame classes with a blank (the last class): (B, T, C + 1) logits; reads any length
    up to T. CTC has no label smoothing."""

    decoding = "ctc"
    variable_length = True
    label_smoothing = False
    deterministic_on_cuda = False  # CUDA's CTC loss backward has no deterministic kernel
    frames: int  # T, set by the net: no label longer than this can be placed

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits, dim=-1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        if label_smoothing:
            raise ValueError(f"label_smoothing: CTC has none, got {label_smoothing}")
        return ctc_loss(self.log_probs(logits), targets)

    def decode(self, logits: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C + 1) logits -> (B, width) greedy CTC reads padded with PAD, and (B,) confidences."""
        return greedy_decode(self.log_probs(logits), width)


def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B, T, C + 1) log-probabilities and (B, S) targets padded with PAD -> mean CTC loss per
    target symbol (PyTorch's 'mean' reduction), so it compares across label lengths."""
    batch, frames, classes = log_probs.shape
    target_lengths = (targets != PAD).sum(1)  # (B,)
    input_lengths = torch.full((batch,), frames, dtype=torch.long, device=log_probs.device)
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),  # (T, B, C + 1), as ctc_loss wants
        targets.clamp(min=0),  # padding is never read past target_lengths, but must be a valid index
        input_lengths,
        target_lengths,
        blank=classes - 1,
        zero_infinity=True,  # an impossible alignment (label longer than T) must not poison a batch
    )


def greedy_decode(log_probs: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, C + 1) -> (B, width) symbol indices padded with PAD, and (B,) confidences (the
    probability of the best path). Merges repeats, then drops blanks; longer decodes are cut at
    `width`, so pass one more than the longest label to keep a too-long read wrong."""
    blank = log_probs.shape[-1] - 1
    best, index = log_probs.max(-1)  # (B, T)
    previous = F.pad(index, (1, 0), value=blank)[:, :-1]
    keep = (index != blank) & (index != previous)  # (B, T)
    # Each kept symbol goes to its rank among the row's kept ones; the rest, and ranks past
    # `width`, to a spare last column that is then cut: one scatter instead of a loop over rows.
    rank = keep.cumsum(1) - 1  # (B, T)
    column = torch.where(keep & (rank < width), rank, width)
    out = torch.full((len(index), width + 1), PAD, dtype=torch.long, device=index.device)
    out.scatter_(1, column, torch.where(column < width, index, PAD))
    out = out[:, :width]
    return out, best.sum(-1).exp()
