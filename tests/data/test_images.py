"""Image decoding: any mode and size to 50x200 grayscale; bad files refused by name."""

import io
import warnings

import cv2
import numpy as np
import PIL.Image
import PIL.PngImagePlugin
import pytest

from captcha_lab.data.images import (
    MAX_PIXELS,
    ImageError,
    decode_image,
    image_size,
    list_images,
    quiet_decoders,
    read_image,
    to_floats,
    to_pixels,
)

from .image_files import named_pipe, png_header, save


@pytest.mark.parametrize("name,mode", [("2b827.png", "RGBA"), ("2b827.jpg", "RGB"), ("2b827.png", "L")])
def test_any_mode_reads_as_gray_50x200(tmp_path, name, mode):
    arr = save(tmp_path / name, mode)
    img = read_image(tmp_path / name)
    assert img.shape == (50, 200) and img.dtype == np.uint8
    if mode == "L":
        np.testing.assert_array_equal(img, arr)
    if mode == "RGBA":  # the same gray as cv2's own read of the RGB part (the report's preprocessing)
        expected = cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
        assert np.abs(img.astype(int) - expected).max() <= 1


def test_wrong_size_is_resized(tmp_path):
    save(tmp_path / "2b827.png", "L", size=(400, 100))
    assert read_image(tmp_path / "2b827.png").shape == (50, 200)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "a damaged PNG: a chunk's length or type is broken"),
        (png_header(8_000, 8_000), f"8000x8000 pixels is more than the limit of {MAX_PIXELS}"),
        (png_header(20_000, 20_000), "more pixels than the limit"),  # PIL's own bomb check fires first
    ],
)
def test_bad_image_is_refused_with_its_name(tmp_path, data, reason):
    path = tmp_path / "2b827.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=f"^{path}: {reason}"):
        read_image(path)


def test_a_named_pipe_or_device_is_refused_unopened(tmp_path):
    # Opening a pipe named like an image waited for a writer for ever; /dev/zero never ends.
    with named_pipe(tmp_path / "2b827.png") as fifo:
        with pytest.raises(ImageError, match=f"^{fifo}: not a regular file$"):
            read_image(fifo)
        assert image_size(fifo) is None  # what charset=auto and data.width=null read first
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(ImageError, match="zero.png: not a regular file$"):
        read_image(tmp_path / "zero.png")


def every_mode(tmp_path, rgb: np.ndarray) -> dict[str, "Path"]:  # noqa: F821
    """The same picture as a 1-bit, palette, RGBA and 16-bit PNG and a CMYK JPEG."""
    from PIL import Image

    image = Image.fromarray(rgb)
    files = {
        "1": image.convert("1", dither=Image.Dither.NONE),
        "P": image.convert("P", palette=Image.Palette.ADAPTIVE),
        "RGBA": image.convert("RGBA"),
        "I;16": Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257),
    }
    paths = {mode: tmp_path / f"{i}.png" for i, mode in enumerate(files)}
    for mode, picture in files.items():
        picture.save(paths[mode])
    paths["CMYK"] = tmp_path / "cmyk.jpg"
    image.convert("CMYK").save(paths["CMYK"], quality=95)
    return paths


@pytest.mark.parametrize("channels", [1, 3])
def test_every_image_mode_reads_at_any_size_and_channels(tmp_path, channels):
    # Two flat colours: every mode keeps them (the 1-bit one as black and white).
    rgb = np.zeros((30, 70, 3), np.uint8)
    rgb[:, 35:] = (230, 200, 40)
    for mode, path in every_mode(tmp_path, rgb).items():
        img = read_image(path, (50, 120), channels)
        assert img.shape == ((50, 120) if channels == 1 else (50, 120, 3)) and img.dtype == np.uint8, mode
        left, right = img[:, :50].astype(int), img[:, 70:].astype(int)
        assert left.max() <= 12 and right.min() >= (150 if mode in ("1", "I;16") or channels == 1 else 30), mode
    colour = read_image(every_mode(tmp_path, rgb)["RGBA"], (30, 70), 3)
    np.testing.assert_array_equal(colour[0, -1], (230, 200, 40))  # RGB order, not cv2's BGR


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGBA;16"])
@pytest.mark.parametrize("channels", [1, 3])
def test_transparent_pixels_read_as_white_background(tmp_path, mode, channels):
    # Dark-blue text on a transparent background whose colour under the alpha is black, as PIL and
    # many sites leave it: read as text on white, not as a black image.
    from PIL import Image

    rgba = np.zeros((50, 200, 4), np.uint8)
    rgba[10:40, 50:100] = (0, 0, 120, 255)
    image = Image.fromarray(rgba)
    path = tmp_path / "2b827.png"
    if mode == "RGBA;16":  # 16 bits a channel, the same values
        cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA).astype(np.uint16) * 257)
    else:
        image = image.convert(mode)
        image.save(path)
    img = read_image(path, channels=channels)
    assert img[0, 0].min() == 255 and img[20:30, 60:90].max() <= 130  # white around, dark text
    np.testing.assert_array_equal(to_pixels(image, channels=channels), img)  # as a PIL image: the same


def test_half_transparent_pixels_are_painted_over_white(tmp_path):
    path = tmp_path / "2b827.png"
    cv2.imwrite(str(path), np.full((50, 200, 4), (0, 0, 0, 128), np.uint8))  # black at half alpha
    assert np.unique(read_image(path)).tolist() == [127]


def test_opaque_rgba_reads_as_cv2s_plain_read(tmp_path):
    # captcha_v2's RGBA PNGs are all opaque: the models trained on them saw cv2's plain read.
    arr = save(tmp_path / "2b827.png", "RGBA")
    np.testing.assert_array_equal(read_image(tmp_path / "2b827.png"), cv2.imread(str(tmp_path / "2b827.png"), 0))
    assert arr[..., 3].min() == 255


def test_opaque_rgba_reads_in_colour_from_one_decode(tmp_path, monkeypatch):
    # Colour is the plain read's BGR taken from the decode that looked at alpha, not a second decode.
    path = tmp_path / "2b827.png"
    pixels = np.random.default_rng(0).integers(0, 256, (50, 200, 4), np.uint8)
    pixels[..., 3] = 255
    cv2.imwrite(str(path), pixels)
    plain = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    decodes = []
    imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *args: decodes.append(args[1]) or imdecode(*args))
    np.testing.assert_array_equal(read_image(path, channels=3), plain)
    assert decodes == [cv2.IMREAD_UNCHANGED]


def test_exif_orientation_is_ignored_as_for_pil_images(tmp_path):
    # A JPEG tagged "rotate 90": the file, its bytes and the PIL image read the same 50x200 pixels.
    from PIL import Image

    rgb = np.full((50, 200, 3), 255, np.uint8)
    rgb[:, :20] = 0  # a dark band on the left: rotated, it would be at the top or bottom
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    path = tmp_path / "2b827.jpg"
    Image.fromarray(rgb).save(path, exif=exif, quality=95)
    img = read_image(path)
    assert img.shape == (50, 200) and img[:, :15].max() <= 40 and img[:, 30:].min() >= 200
    with Image.open(path) as pil:
        assert np.abs(to_pixels(pil).astype(int) - img).max() <= 1


def test_quiet_decoders_leaves_a_truncated_file_to_our_own_error(capfd):
    # OpenCV's own "[ERROR] ... imdecode_: can't read data" would repeat ImageError, and in a
    # server's log read as the server's error. capfd: OpenCV writes to the file descriptor.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (200, 50)).save(buffer, "BMP")
    quiet_decoders()
    with pytest.raises(ImageError, match="not a readable image"):
        decode_image(buffer.getvalue()[:300])
    assert "imdecode" not in capfd.readouterr().err
    # PIL warns of a bomb between its limit and twice it; ours, lower, already refuses it in one line.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_decoders()
        with pytest.raises(ImageError, match="more than the limit"):
            decode_image(png_header(10_000, 10_000))
    assert not caught


def flip_crc(png: bytes, kind: bytes) -> bytes:
    """`png` with one bit of its `kind` chunk's checksum flipped, as bit rot would leave it."""
    data = bytearray(png)
    at = data.find(kind)  # the chunk's type, after its 4-byte length
    data[at + 4 + int.from_bytes(data[at - 4 : at], "big")] ^= 0x01
    return bytes(data)


def test_a_png_with_a_damaged_chunk_is_named_and_libpng_stays_quiet(capfd):
    # capfd: OpenCV's libpng writes "libpng error: IDAT: CRC error" to the file descriptor itself.
    info = PIL.PngImagePlugin.PngInfo()
    info.add_text("Comment", "a captcha")
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.arange(10_000, dtype=np.uint8).reshape(50, 200)).save(buffer, "PNG", pnginfo=info)
    quiet_decoders()
    with pytest.raises(ImageError, match="a damaged PNG: its IDAT chunk fails its checksum"):
        decode_image(flip_crc(buffer.getvalue(), b"IDAT"))
    # An ancillary chunk's damage costs only that chunk, as in libpng: the pixels read as they are.
    assert np.array_equal(decode_image(flip_crc(buffer.getvalue(), b"tEXt")), decode_image(buffer.getvalue()))
    assert np.array_equal(decode_image(flip_crc(buffer.getvalue(), b"IEND")), decode_image(buffer.getvalue()))
    # A broken length puts the next "type" anywhere: named as broken, with none of its raw bytes.
    broken = bytearray(buffer.getvalue())
    broken[broken.find(b"tEXt") - 1] ^= 0x01
    with pytest.raises(ImageError, match=r"^a damaged PNG: a chunk's length or type is broken$"):
        decode_image(bytes(broken))
    assert "libpng" not in capfd.readouterr().err


@pytest.mark.parametrize(
    "shape,seen",
    [((1, 200, 3), (1, 200, 3)), ((50, 1, 3), (50, 1, 3)), ((1, 1, 3), (1, 1, 3)), ((1, 50, 200), (50, 200)),
     ((50, 200, 1), (50, 200)), ((1, 50, 200, 3), (50, 200, 3)), ((50, 200, 1, 1), (50, 200)),
     ((1, 1, 50, 200, 3), (50, 200, 3))],
)  # fmt: skip
def test_arrays_keep_their_height_and_width_axes(shape, seen):
    # A squeeze of every axis of 1 read a 1 px high RGB row (1, 200, 3) as a 200x3 gray image.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image = pixels.reshape(seen)
    mode = {2: "L", 3: "RGB"}[image.ndim]
    np.testing.assert_array_equal(
        to_pixels(pixels, channels=3), to_pixels(PIL.Image.fromarray(image, mode), channels=3)
    )


def test_a_transparent_images_colours_stay_rgb(tmp_path):
    rgba = np.zeros((50, 200, 4), np.uint8)  # transparent, over white
    rgba[10:40, 20:80] = (200, 30, 10, 255)  # an opaque red patch
    PIL.Image.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    pixels = read_image(tmp_path / "red.png", (50, 200), channels=3)
    assert tuple(pixels[20, 50]) == (200, 30, 10) and tuple(pixels[0, 0]) == (255, 255, 255)  # not BGR


def test_folders_list_images_by_any_suffix_case_and_floats_keep_white_at_one(tmp_path):
    for name in ("a.PNG", "b.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "c.png").mkdir()  # a folder named like an image is no image
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpg"]
    # Augmentation fills from outside the image with 1.0: the background must be exactly that.
    assert to_floats([np.full((50, 200), 255, np.uint8)]).max() == 1.0


@pytest.mark.parametrize("mode", ["I;16L", "I;16N"])
def test_16_bit_modes_png_lacks_are_scaled_not_clipped(mode):
    """PNG holds 16-bit gray only as I;16: a conversion to RGB on the way would clip every value
    over 255 to white, one to 8 bits keep only the low byte."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (50, 200), dtype=np.uint16)
    image = PIL.Image.frombytes(mode, (200, 50), pixels.astype({"I;16L": "<u2", "I;16N": "=u2"}[mode]).tobytes())
    got = to_pixels(image)
    np.testing.assert_array_equal(got, to_pixels(PIL.Image.fromarray(pixels)))  # its PNG-native I;16 twin
    assert np.abs(got.astype(int) - pixels / 257).max() <= 1
