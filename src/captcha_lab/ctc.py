"""CTC loss and greedy decoding for per-frame nets (blank = the last class)."""

import torch
import torch.nn.functional as F

from captcha_lab.charset import PAD


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
    out = torch.full((len(index), width), PAD, dtype=torch.long, device=index.device)
    for row, (symbols, mask) in enumerate(zip(index, keep, strict=True)):
        kept = symbols[mask][:width]
        out[row, : len(kept)] = kept
    return out, best.sum(-1).exp()
