"""Decoding families: how a net's logits become a loss and texts. A net inherits one
(`PerPosition` or `CTC`), so the training system, the exporter and the readers ask the net
instead of dispatching on its kind.

Both take logits and give (B, width) symbol indices padded with PAD; `width` is one more than the
longest label, so a too-long read stays wrong."""

import torch
import torch.nn.functional as F

from captcha_lab.data.charset import PAD
from captcha_lab.models.ctc_lengths import best_paths


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

    def decode(self, logits: torch.Tensor, width: int, fit_lengths: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) logits -> (B, width) symbol indices padded with PAD, and (B,) confidences
        (the product of the per-position maxima). Every read has L symbols: `fit_lengths` is CTC's."""
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
    # (shortest, longest) label the net was trained on, set by the net: reads are held to it
    # (models.ctc_lengths). None: a read has any length up to T.
    read_lengths: tuple[int, int] | None = None

    def log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(logits, dim=-1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        if label_smoothing:
            raise ValueError(f"label_smoothing: CTC has none, got {label_smoothing}")
        return ctc_loss(self.log_probs(logits), targets)

    def decode(self, logits: torch.Tensor, width: int, fit_lengths: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C + 1) logits -> (B, width) CTC reads padded with PAD, and (B,) confidences: each
        frame's best class, except that with `fit_lengths` (and `read_lengths` set) a row reading
        a length outside `read_lengths` takes its best path that reads one inside."""
        log_probs = self.log_probs(logits)
        best, index = log_probs.max(-1)  # (B, T) each
        if fit_lengths and self.read_lengths is not None:
            best, index = fit_path_lengths(log_probs, best, index, *self.read_lengths)
        return collapse(best, index, log_probs.shape[-1] - 1, width)


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
    return collapse(*log_probs.max(-1), log_probs.shape[-1] - 1, width)


def writes(index: torch.Tensor, blank: int) -> torch.Tensor:
    """(B, T) frame classes -> (B, T) whether each frame writes a symbol: neither the blank nor
    a repeat of the frame before."""
    previous = F.pad(index, (1, 0), value=blank)[:, :-1]
    return (index != blank) & (index != previous)


def fit_path_lengths(
    log_probs: torch.Tensor, best: torch.Tensor, index: torch.Tensor, shortest: int, longest: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each frame's best class (B, T) and its log-probability -> the same, with every row whose
    path reads fewer than `shortest` or more than `longest` symbols replaced by its best path
    that reads a length in between (models.ctc_lengths, on the CPU: a few rows, once trained)."""
    n = writes(index, log_probs.shape[-1] - 1).sum(1)  # (B,) symbols read
    rows = ((n < shortest) | (n > longest)).nonzero()[:, 0]
    if not len(rows):
        return best, index
    fitted = best_paths(log_probs[rows].detach().float().cpu().numpy(), shortest, longest)
    path = torch.from_numpy(fitted).to(index.device)  # (R, T)
    index, best = index.clone(), best.clone()
    index[rows] = path
    best[rows] = log_probs[rows].gather(-1, path[..., None])[..., 0].to(best.dtype)
    return best, index


def collapse(best: torch.Tensor, index: torch.Tensor, blank: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame path, (B, T) classes and their log-probabilities -> (B, width) its reads padded
    with PAD (repeats merged, blanks dropped, cut at `width`), and (B,) the path's probability."""
    keep = writes(index, blank)  # (B, T)
    # Each kept symbol goes to its rank among the row's kept ones; the rest, and ranks past
    # `width`, to a spare last column that is then cut: one scatter instead of a loop over rows.
    rank = keep.cumsum(1) - 1  # (B, T)
    column = torch.where(keep & (rank < width), rank, width)
    out = torch.full((len(index), width + 1), PAD, dtype=torch.long, device=index.device)
    out.scatter_(1, column, torch.where(column < width, index, PAD))
    out = out[:, :width]
    return out, best.sum(-1).exp()
