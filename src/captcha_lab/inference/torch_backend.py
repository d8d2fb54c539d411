"""Reading captchas on PyTorch: `Predictor.from_checkpoint(path).predict([...])`. Imports neither
Lightning nor torchvision, whose imports would dominate a short job's start-up."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from captcha_lab.data.labelled import to_tensor
from captcha_lab.inference.reader import BATCH_SIZE, Reader
from captcha_lab.models.base import CaptchaNet
from captcha_lab.models.checkpoint import load_net

# Jobs reading fewer images than this run PyTorch's own ops instead of hand-written CPU kernels
# (the same function): a kernel's one-off start-up per process (numba's import and cached code)
# only pays off over many images (docs/benchmarks.md).
KERNEL_MIN_IMAGES = 10_000


class Predictor(Reader):
    def __init__(self, net: CaptchaNet, symbols: str, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu"):
        super().__init__(symbols, net.spec["length"], batch_size)
        self.net = net.eval().to(device)
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu", kernel: bool = True
    ):
        """`kernel=False`: PyTorch's own ops instead of the net's CPU kernels (see KERNEL_MIN_IMAGES)."""
        net, symbols = load_net(path, map_location=device)
        net.use_kernels(kernel)  # this net is the Predictor's own: nobody else's net is changed
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
