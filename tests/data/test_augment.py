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


def warp_parts(augment: Augment, h: int = 50, w: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2, 2) linear parts in pixels and (n, 2) shifts as fractions of the width and height."""
    torch.manual_seed(0)
    theta = augment._affine(256, h, w, "cpu").double()
    return pixel_matrices(augment, h, w), theta[:, :, 2] / 2  # [-1, 1] spans each side twice over


def test_translate_alone_shifts_each_axis_by_up_to_its_fraction():
    """translate bounds the shift across and down, and moves nothing else."""
    linear, shift = warp_parts(Augment(degrees=0, translate=0.1, scale=0, shear=0))
    torch.testing.assert_close(linear, torch.eye(2, dtype=torch.double).expand_as(linear))
    assert (shift.abs().amax(0) <= 0.1).all() and (shift.abs().amax(0) > 0.09).all()  # across and down


def test_scale_alone_zooms_by_up_to_its_fraction_and_composes_with_a_turn():
    """scale bounds an even zoom, of a turned image too."""
    linear, shift = warp_parts(Augment(degrees=0, translate=0, scale=0.08, shear=0))
    assert shift.abs().max() == 0
    zoom = 1 / linear.diagonal(dim1=1, dim2=2)  # output size over input size, one per axis
    torch.testing.assert_close(linear, torch.diag_embed(1 / zoom))
    torch.testing.assert_close(zoom[:, 0], zoom[:, 1])  # no stretch
    assert (zoom - 1).abs().max() <= 0.08 and (zoom - 1).abs().max() > 0.07
    # With a turn: that turn, zoomed (one seed draws the same angles and zooms for each setting).
    turned, _ = warp_parts(Augment(degrees=10, translate=0, scale=0.08, shear=0))
    turn, _ = warp_parts(Augment(degrees=10, translate=0, scale=0, shear=0))
    torch.testing.assert_close(turned, turn / zoom[:, :1, None])


def displacement(augment: Augment, axis: int) -> torch.Tensor:
    """Each interior pixel's displacement along `axis` (-1: across, -2: down) in grid_sample's
    units, read off a ramp image: bilinear sampling of a linear ramp is exact."""
    n = (50, 200)[axis]
    ramp = 0.25 + 0.5 * torch.arange(n) / (n - 1)
    x = (ramp if axis == -1 else ramp[:, None]).expand(8, 1, 50, 200).clone()
    torch.manual_seed(0)
    moved = augment.train()._warp(x) - x
    return moved[..., 8:-8, 8:-8] * 2 * (n - 1) / (n * 0.5)


def test_elastic_displacement_grows_with_its_setting():
    """elastic is the field's standard deviation (bicubic upsampling smooths it a little)."""
    for axis in (-1, -2):
        assert displacement(Augment(degrees=0, translate=0, scale=0, shear=0), axis).abs().max() < 1e-5
        for elastic in (0.01, 0.04):
            field = displacement(Augment(degrees=0, translate=0, scale=0, shear=0, elastic=elastic), axis)
            assert 0.5 * elastic < field.std() < elastic, (axis, elastic)


def test_noise_and_erasing_follow_their_settings():
    """noise is the noise's standard deviation, erase a chance per image of a small white patch."""
    gray = torch.full((32, 1, 50, 200), 0.5)
    off = dict(degrees=0, translate=0, scale=0, shear=0)
    torch.manual_seed(0)
    noise = Augment(**off, noise=0.05).train()(gray.clone()) - gray
    assert 0.045 < noise.std() < 0.055
    erased = (Augment(**off, erase=0.5).train()(gray.clone()) == 1).flatten(1).float().mean(1)
    assert 0 < (erased > 0).sum() < 32  # a chance per image
    assert erased.max() <= 0.02 and erased[erased > 0].min() >= 0.005  # small patches only
