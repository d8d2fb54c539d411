"""Optimizers that evaluate at other weights than they train at, such as schedule-free AdamW
(the schedulefree package: it trains at one point and evaluates at an average of the iterates),
and the BatchNorm statistics those weights need."""

from collections import deque
from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.swa_utils import update_bn


def has_eval_weights(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer` swaps the net's weights with .train() and .eval() (torch's own
    optimizers have neither)."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


class EvalWeights:
    """Puts such optimizers' training weights in the net before each training step and their
    evaluation weights before each validation, and then re-estimates the BatchNorm statistics from
    the last `images` training images (as augmented): the running statistics were gathered with
    the training weights, and the averaged weights read worse with them. Does nothing for other
    optimizers, and keeps no batches for them."""

    def __init__(self, images: int = 160):
        self.images = images
        self.recent: deque[torch.Tensor] = deque()  # the last training batches, oldest first
        self.training = False  # whether the optimizers hold the training weights in the net

    def train(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        if self.training:
            return
        for optimizer in filter(has_eval_weights, optimizers):
            optimizer.train()
            self.training = True

    def remember(self, x: torch.Tensor) -> None:
        """Keep a training batch (B, C, H, W) for the statistics, while the weights are swapped."""
        if not self.training:
            return
        self.recent.append(x.detach())
        while sum(map(len, self.recent)) - len(self.recent[0]) >= self.images:
            self.recent.popleft()

    @torch.no_grad()
    def eval(self, optimizers: Sequence[torch.optim.Optimizer], net: nn.Module) -> None:
        if not self.training:  # nothing trained since the last swap (or ever)
            return
        for optimizer in filter(has_eval_weights, optimizers):
            optimizer.eval()
        if self.recent:
            # One forward pass of them all (fewer, larger kernels than one per batch), in train
            # mode with BatchNorm's momentum off: its statistics become theirs; then net.train(was).
            update_bn([torch.cat(tuple(self.recent))], net)
            self.recent.clear()
        self.training = False
