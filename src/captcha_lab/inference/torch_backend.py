"""Reading captchas on PyTorch: `Predictor.from_checkpoint(path).predict([...])`. Imports neither
Lightning nor torchvision, whose imports would dominate a short job's start-up."""

from pathlib import Path

import numpy as np
import torch

from captcha_lab.inference.reader import BATCH_SIZE, Reader
from captcha_lab.models.base import CaptchaNet
from captcha_lab.models.checkpoint import load_net

# Jobs reading fewer images than this run PyTorch's own ops instead of hand-written CPU kernels
# (the same function): a kernel's one-off start-up per process (numba's import and cached code)
# only pays off over many images (docs/benchmarks.md).
KERNEL_MIN_IMAGES = 10_000


class Predictor(Reader):
    def __init__(self, net: CaptchaNet, symbols: str, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu"):
        spec = net.spec
        super().__init__(
            symbols, spec["length"], net.decoding, spec["image_size"], spec["in_channels"], batch_size,
            spec.get("min_length"),  # absent from checkpoints before reads were held to it
        )  # fmt: skip
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
    def frame_scores(self, x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x = torch.as_tensor(x).to(self.device)
        log_probs = self.net.log_probs(self.net(x)).float()  # (B, T, C), as the ONNX export's graph
        best, index = log_probs.max(-1)  # (B, T) each
        fit = self.read_lengths is not None
        return best.cpu().numpy(), index.cpu().numpy(), log_probs.cpu().numpy() if fit else None
