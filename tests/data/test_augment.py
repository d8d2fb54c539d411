"""Batch augmentation: shapes and range kept, per-image warps in pixels, off in eval mode."""

import torch
import torch.nn.functional as F

from captcha_lab.data.augment import Augment, affine_grid

STRONG = dict(degrees=5, translate=0.05, scale=0.08, shear=10, elastic=0.01, noise=0.05, erase=1.0)


def test_keeps_shape_and_range_and_varies_per_image():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 50, 200).repeat(6, 1, 1, 1)
    for kwargs in ({}, STRONG):
        y = Augment(**kwargs).train()(x.clone())
        assert y.shape == x.shape and y.dtype == x.dtype
        assert 0 <= y.min() and y.max() <= 1
        assert not torch.allclose(y, x)
        assert not torch.allclose(y[0], y[1])  # each image its own parameters


def test_zero_warp_is_identity_and_white_stays_white():
    x = torch.rand(2, 1, 50, 200)
    none = Augment(degrees=0, translate=0, scale=0, shear=0).train()
    torch.testing.assert_close(none(x.clone()), x, atol=1e-4, rtol=0)
    white = torch.ones(4, 1, 50, 200)
    torch.testing.assert_close(Augment(degrees=10, translate=0.1).train()(white), white)  # fill is background


def test_off_in_eval_mode():
    x = torch.rand(3, 1, 50, 200)
    assert torch.equal(Augment(**STRONG).eval()(x), x)


def pixel_matrices(augment: Augment, h: int = 50, w: int = 200) -> torch.Tensor:
    """(n, 2, 2) linear parts of the sampled warps in pixels (grid_sample's [-1, 1] spans w and h)."""
    torch.manual_seed(0)
    theta = augment._affine(256, h, w, "cpu")[:, :, :2].double()
    scale = torch.tensor([w / 2, h / 2], dtype=torch.double)
    return scale[:, None] * theta / scale[None, :]  # D A D^-1


def test_rotation_and_shear_are_in_pixels_on_a_wide_image():
    turn = pixel_matrices(Augment(degrees=3, translate=0, scale=0, shear=0))
    eye = torch.eye(2, dtype=torch.double).expand_as(turn)
    torch.testing.assert_close(turn @ turn.transpose(1, 2), eye)  # a rotation: no slant, no stretch
    angles = torch.rad2deg(torch.atan2(turn[:, 1, 0], turn[:, 0, 0]))
    assert angles.abs().max() <= 3 and angles.abs().max() > 2.5
    slant = pixel_matrices(Augment(degrees=0, translate=0, scale=0, shear=5))
    torch.testing.assert_close(slant[:, 1], torch.tensor([0.0, 1.0], dtype=torch.double).expand(256, 2))
    shear = torch.rad2deg(torch.atan(slant[:, 0, 1]))
    assert shear.abs().max() <= 5 and shear.abs().max() > 4.5


def test_affine_grid_matches_torch():
    theta = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(theta, [4, 3, 7, 30], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, 7, 30), expected)
