"""What charset=auto, data.length=null and data.width=null take from a folder."""

from pathlib import Path

import pytest

from captcha_lab.data import inferred
from captcha_lab.data.datamodule import CaptchaDataModule
from captcha_lab.errors import ConfigError, DataError

from .image_files import save


def test_alphabet_and_lengths_from_labels():
    labels = {Path("a.png"): "b2a", Path("b.png"): "ZZa 9", Path("c.png"): "2"}
    assert inferred.alphabet(labels) == " 29Zab"  # sorted, each symbol once
    assert inferred.lengths(labels) == (1, 5)


@pytest.mark.parametrize("size,width", [((70, 30), 120), ((200, 50), 200), ((100, 40), 128), ((40, 40), 48)])
def test_width_keeps_the_median_aspect_in_whole_frames(tmp_path, size, width):
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for f in files:
        save(f, "L", size=size)
    save(tmp_path / "odd.png", "L", size=(500, 10))  # one outlier moves no median
    (tmp_path / "junk.png").write_text("not an image")  # no size: left out
    sizes = inferred.header_sizes([*files, tmp_path / "odd.png", tmp_path / "junk.png"])
    assert len(sizes) == 4 and inferred.width_for(sizes.values(), 50) == width


def test_width_is_at_least_one_frame_for_very_tall_images():
    assert inferred.width_for([(1000, 10)], 50) == inferred.WIDTH_STEP  # not 0 px wide


def test_datamodule_infers_alphabet_lengths_and_width(mixed_length_dir):
    dm = CaptchaDataModule(dir=str(mixed_length_dir), symbols="auto")
    labels = [p.stem for p in mixed_length_dir.glob("*.png")]
    assert dm.charset.symbols == "".join(sorted(set("".join(labels))))
    assert (dm.length, dm.max_length, dm.image_size) == (4, 6, (50, 200))
    assert dm.hparams.symbols == dm.charset.symbols  # what the checkpoint and TensorBoard record
    pinned = CaptchaDataModule(dir=str(mixed_length_dir), length=5, height=32, width=64)
    assert (pinned.length, pinned.max_length, pinned.image_size) == (5, 5, (32, 64))


def test_unreadable_files_add_no_symbols_or_lengths(tmp_path, caplog):
    # macOS's AppleDouble files (._name.png) and other non-images: named when decoded, not learnt.
    for name in ("2b827", "3c8d4", "4d9e5"):
        save(tmp_path / f"{name}.png", "L", size=(200, 50))
    (tmp_path / "._2b827.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "XYZ12345.png").write_text("<html>not found</html>")
    with caplog.at_level("WARNING"):
        dm = CaptchaDataModule(dir=str(tmp_path), symbols="auto")
        dm.setup("fit")
    assert (dm.charset.symbols, dm.length, dm.max_length) == ("2345789bcde", 5, 5)
    assert caplog.messages == ["skipped 2 file(s) that could not be read: ._2b827.png, XYZ12345.png"]
    for p in tmp_path.glob("*.png"):
        p.write_text("junk")
    with pytest.raises(DataError, match=f"^no usable captcha images in {tmp_path}: none of its 5 can be read$"):
        CaptchaDataModule(dir=str(tmp_path), symbols="auto")


def test_synthetic_needs_a_named_alphabet(tmp_path):
    with pytest.raises(ConfigError, match="^charset: data.synthetic generates captchas"):
        CaptchaDataModule(dir=str(tmp_path), symbols="auto", synthetic=10)


def test_a_width_from_an_extreme_aspect_is_refused(tmp_path):
    for i in range(3):
        save(tmp_path / f"abcd{i}.png", "L", size=(4000, 20))  # 200:1
    with pytest.raises(ConfigError, match=r"^data.width: the images' aspect gives 10000 pixels at data.height=50"):
        CaptchaDataModule(dir=str(tmp_path), symbols="auto", length=None, width=None)
