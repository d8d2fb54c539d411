"""Training-time augmentation of image batches, on tensors."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from captcha_lab.errors import check_range


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, (B, C, h, w), align_corners=False) as broadcast products: torch's
    multiplies every pixel's (x, y, 1) by a 3x2 matrix in a batched matmul, which costs more than
    the grid_sample it feeds."""
    x = (torch.arange(w, device=theta.device, dtype=theta.dtype) * 2 + 1) / w - 1  # pixel centres in [-1, 1]
    y = (torch.arange(h, device=theta.device, dtype=theta.dtype) * 2 + 1) / h - 1
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    grid = t[:, :, 0] * x + t[:, :, 1] * y[:, None] + t[:, :, 2]  # (B, 2, H, W)
    return grid.permute(0, 2, 3, 1)  # (B, H, W, 2): x then y, as grid_sample reads them


class Augment(nn.Module):
    """(B, C, H, W) in [0, 1] -> the same shape and range, each image with its own random warp.

    torchvision's v2 transforms draw one set of parameters per call, and a geometric call per
    image would cost more than the training step, so the geometric part (affine + elastic) is one
    batched grid_sample with per-image parameters; noise (drawn per pixel, over the whole batch in
    one call) and erasing (one call per image) are v2 transforms, cheap either way. Identity in
    eval mode; the system applies it in training_step only. Zero turns a part off."""

    def __init__(
        self,
        degrees: float = 3.0,
        translate: float = 0.03,
        scale: float = 0.05,
        shear: float = 5.0,
        elastic: float = 0.0,
        noise: float = 0.0,
        erase: float = 0.0,
    ):
        super().__init__()
        # Upper bounds past any useful warp (translate=50 made every image blank, scale >= 1 a
        # negative zoom), each (value, bound, whether the bound itself is allowed).
        sizes = dict(degrees=(degrees, 180, True), translate=(translate, 0.5, True), scale=(scale, 1, False))
        sizes |= dict(shear=(shear, 90, False), elastic=(elastic, 1, True), noise=(noise, 1, True))
        for name, (value, high, closed) in sizes.items():
            check_range(name, value, 0, high, closed=closed)
        check_range("erase", erase, 0, 1, closed=True)  # a probability
        self.degrees, self.translate, self.scale, self.shear = degrees, translate, scale, shear
        # Standard deviation of the smooth displacement field, in grid_sample's units (half the
        # image's width across, half its height down): 0.01 is ~1 px across, ~0.25 px down.
        self.elastic = elastic
        self.noise = v2.GaussianNoise(sigma=noise, clip=True) if noise else None
        # Small patches only: erasing a whole character would make the label a lie.
        self.erase = v2.RandomErasing(p=erase, scale=(0.005, 0.02), value=1.0) if erase else None

    def _affine(self, n: int, h: int, w: int, device) -> torch.Tensor:
        """(n, 2, 3) matrices mapping output to input coordinates in grid_sample's [-1, 1]."""

        def uniform(limit: float) -> torch.Tensor:
            return (torch.rand(n, device=device) * 2 - 1) * limit

        angle, shear = uniform(math.radians(self.degrees)), uniform(math.radians(self.shear))
        zoom = 1 + uniform(self.scale)
        cos, sin, tan = torch.cos(angle) / zoom, torch.sin(angle) / zoom, torch.tan(shear)
        theta = torch.zeros(n, 2, 3, device=device)
        # Shear along x, then rotate, in pixels. [-1, 1] spans the width across and the height
        # down, so a pixel-space matrix's off-diagonal terms are scaled by the aspect ratio
        # (without it a 3-degree turn of a 50x200 image slanted its strokes by 12 degrees).
        theta[:, 0, 0], theta[:, 0, 1] = cos, (cos * tan - sin) * h / w
        theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, sin * tan + cos
        theta[:, :, 2] = torch.stack([uniform(self.translate), uniform(self.translate)], 1) * 2
        return theta

    def _warp(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        grid = affine_grid(self._affine(n, h, w, x.device), h, w)  # (B, H, W, 2)
        if self.elastic:
            # A smooth random field: coarse 4x16 noise upsampled, so strokes bend rather than tear.
            coarse = torch.randn(n, 2, 4, 16, device=x.device) * self.elastic
            grid = grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        # Fill from outside the image with white, the captchas' background: warp 1 - x with zeros.
        return 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        x = self._warp(x)
        if self.noise is not None:
            x = self.noise(x)
        if self.erase is not None:
            x = torch.stack([self.erase(img) for img in x])
        return x.clamp_(0, 1)
