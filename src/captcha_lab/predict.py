"""Reading captchas with a trained checkpoint on PyTorch: `Predictor.from_checkpoint(path).predict([...])`.

Imports neither Lightning nor torchvision: predict.py's start-up when it reads with PyTorch is
mostly `import torch` (its ONNX Runtime reader, captcha_lab.onnx_reader, imports no torch)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from captcha_lab.checkpoint import load_net
from captcha_lab.labelled import to_tensor
from captcha_lab.nets import ReportCNN
from captcha_lab.reading import BATCH_SIZE, Reader

# predict.py, when it reads with PyTorch (backend=torch, or no current best.onnx), reads fewer
# images than this with PyTorch's ops for the report net's first block instead of its CPU kernel
# (the same function): the kernel's start, once per process (numba's import and cached code),
# takes ~0.7 s and it then saves ~0.06-0.12 ms per image (two measurements on the AVX2 EPYC): it
# pays off from ~6,000-12,000 images (docs/benchmarks.md).
KERNEL_MIN_IMAGES = 10_000


class Predictor(Reader):
    def __init__(self, net: nn.Module, symbols: str, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu"):
        super().__init__(symbols, net.spec["length"], batch_size)
        self.net = net.eval().to(device)
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu", kernel: bool = True
    ):
        """`kernel=False`: the report net's first block on PyTorch's ops, not its CPU kernel (the same
        function), which skips the kernel's start (see KERNEL_MIN_IMAGES)."""
        net, symbols = load_net(path, map_location=device)
        if isinstance(net, ReportCNN) and not kernel:
            net.fused = False  # this net is the Predictor's own: nobody else's net is changed
        return cls(net, symbols, batch_size=batch_size, device=device)

    @torch.inference_mode()
    def read(self, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """(B, 1, H, W) images in [0, 1] -> B strings and (B,) confidences."""
        index, confidence = self.net.decode(self.net(x.to(self.device)), self.width)
        return self.charset.texts(index), confidence

    def read_lists(self, x: torch.Tensor) -> tuple[list[str], list[float]]:
        texts, confidences = self.read(x)
        return texts, confidences.tolist()

    def read_all(self, x: torch.Tensor) -> tuple[list[str], list[float]]:
        """(N, 1, H, W) images in [0, 1], `batch_size` at a time -> N strings and N confidences."""
        return self.batched(x, self.read_lists)

    def read_pixels(self, images: Sequence[np.ndarray]) -> tuple[list[str], list[float]]:
        return self.read_lists(to_tensor(list(images)))
