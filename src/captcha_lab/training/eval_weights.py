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

    def __init__(self, images: int = 160, chunk_bytes: int = 64 * 2**20):
        self.images = images
        self.chunk_bytes = chunk_bytes  # of images per forward pass: large images go in parts
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
            # In train mode with BatchNorm's momentum off, so its statistics become the images'
            # (the mean of equal parts' statistics), then net.train(was). As few, equal parts as
            # the byte budget allows: fewer, larger kernels than one pass per batch. The images
            # stay: they do not depend on the weights, and the window slides on.
            images = torch.cat(tuple(self.recent))  # (N, C, H, W)
            parts = -(-images.nelement() * images.element_size() // self.chunk_bytes)
            update_bn(images.tensor_split(parts), net)
        self.training = False
