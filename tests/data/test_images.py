"""Image decoding: any mode and size to 50x200 grayscale; bad files refused by name."""

import cv2
import numpy as np
import pytest

from captcha_lab.data.images import MAX_PIXELS, ImageError, read_gray

from .image_files import png_header, save


@pytest.mark.parametrize("name,mode", [("2b827.png", "RGBA"), ("2b827.jpg", "RGB"), ("2b827.png", "L")])
def test_any_mode_reads_as_gray_50x200(tmp_path, name, mode):
    arr = save(tmp_path / name, mode)
    img = read_gray(tmp_path / name)
    assert img.shape == (50, 200) and img.dtype == np.uint8
    if mode == "L":
        np.testing.assert_array_equal(img, arr)
    if mode == "RGBA":  # the same gray as cv2's own read of the RGB part (the report's preprocessing)
        expected = cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
        assert np.abs(img.astype(int) - expected).max() <= 1


def test_wrong_size_is_resized(tmp_path):
    save(tmp_path / "2b827.png", "L", size=(400, 100))
    assert read_gray(tmp_path / "2b827.png").shape == (50, 200)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable image"),
        (png_header(8_000, 8_000), f"8000x8000 pixels is more than the limit of {MAX_PIXELS}"),
        (png_header(20_000, 20_000), "more pixels than the limit"),  # PIL's own bomb check fires first
    ],
)
def test_bad_image_is_refused_with_its_name(tmp_path, data, reason):
    path = tmp_path / "2b827.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=f"^{path}: {reason}"):
        read_gray(path)
