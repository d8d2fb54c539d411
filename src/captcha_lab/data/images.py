"""Decoding captcha images (files, bytes, arrays, PIL images) into the uint8 pixels every net
reads: (H, W) grayscale, or (H, W, 3) RGB for nets of 3 channels. Without PyTorch: the ONNX
Runtime reader never imports it; labelled.py turns folders of these into tensors."""

import io
import os
import stat
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import PIL.Image

from captcha_lab.errors import DataError


def quiet_decoders() -> None:
    """For the command-line entry points: an unreadable file is reported once, by name, in our
    own warning (labelled.load_folder), error (predict.py) or answer (serve.py); OpenCV's
    "[ WARN ] ... PNG input buffer is incomplete" or "[ERROR] ... imdecode_: can't read data" (a
    truncated BMP) only repeats it, and in a server's log reads as the server's own error. Every
    failure of a read shows as its None result, so nothing is lost. PIL's DecompressionBombWarning
    too: MAX_PIXELS, below PIL's own limit, refuses such images in one line. Process-wide, hence
    not done on import."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    warnings.filterwarnings("ignore", category=PIL.Image.DecompressionBombWarning)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGE_SIZE = (50, 200)  # (H, W), as in the report
CHANNELS = (1, 3)  # grayscale, RGB
# What `to_pixels` reads: a path, encoded bytes, or pixels already in memory.
Image = str | Path | bytes | np.ndarray | PIL.Image.Image
MAX_PIXELS = 50_000_000  # refuse decompression bombs long before they reach memory


class ImageError(Exception):
    pass


def decode_image(data: bytes | np.ndarray, size: tuple[int, int] = IMAGE_SIZE, channels: int = 1) -> np.ndarray:
    """Encoded image bytes -> (H, W) uint8 grayscale (channels=1) or (H, W, 3) RGB, resized to
    `size` only when needed."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if buf.size == 0:
        raise ImageError("empty file")
    buf = _png_checked(buf)
    header = _header(io.BytesIO(buf.tobytes()))  # first: a decompression bomb is refused undecoded
    if header is None:
        raise ImageError("not a readable image")
    (h, w), alpha = header
    if w * h > MAX_PIXELS:
        raise ImageError(f"{w}x{h} pixels is more than the limit of {MAX_PIXELS}")
    img = _alpha_read(buf, channels) if alpha else None
    if img is None:
        # cv2's grayscale read is what the report used. The EXIF orientation is ignored, as PIL
        # images (to_pixels) and the header's size (image_size) ignore it.
        flags = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
        img = cv2.imdecode(buf, flags | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None:
            raise ImageError("not a readable image")
        if channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[:2] != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}  # PIL modes with an alpha channel
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = b"\0\0\0\0IEND" + zlib.crc32(b"IEND").to_bytes(4, "big")  # a PNG's last chunk, empty


def _png_checked(buf: np.ndarray) -> np.ndarray:
    """A PNG's bytes with their chunk checksums checked before cv2 decodes them: its libpng
    prints "libpng error: IDAT: CRC error" (or a warning, for an ancillary chunk such as tEXt) on
    stderr itself, past any log level, besides our one line naming the file. A damaged critical
    chunk is an ImageError; a damaged ancillary one is left out, as libpng would drop it, and a
    damaged (empty) IEND replaced. Other formats, and a file cut short (which cv2 reads quietly),
    pass as they are."""
    if buf[: len(PNG_SIGNATURE)].tobytes() != PNG_SIGNATURE:
        return buf
    data = buf.tobytes()
    at, dropped, tail = len(PNG_SIGNATURE), [], None
    while at + 12 <= len(data):  # length (4), type (4), data, CRC (4) of type + data
        end = at + 8 + int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if not kind.isalpha():  # a broken length or type: the chunks are out of step
            raise ImageError("a damaged PNG: a chunk's length or type is broken")
        if end + 4 > len(data):
            break
        if zlib.crc32(data[at + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            if kind == b"IEND":
                tail = at  # it holds nothing: a good one in its place
            elif kind[:1].isupper():  # critical: IHDR, PLTE, IDAT
                raise ImageError(f"a damaged PNG: its {kind.decode()} chunk fails its checksum")
            else:
                dropped.append((at, end + 4))
        if kind == b"IEND":
            break
        at = end + 4
    if not dropped and tail is None:
        return buf
    if tail is not None:
        data = data[:tail] + IEND
    for start, stop in reversed(dropped):  # before the tail: their offsets still hold
        data = data[:start] + data[stop:]
    return np.frombuffer(data, np.uint8)


def _alpha_read(buf: np.ndarray, channels: int) -> np.ndarray | None:
    """An image with an alpha channel -> uint8 pixels as decode_image gives them, from one decode;
    None where the plain read must give them. Transparent pixels are painted over white, the
    captchas' background: cv2's plain reads drop alpha and keep the colour under it, often black.
    An opaque image (captcha_v2's RGBA) is what the plain read gives: for RGB its BGR channels as
    decoded (IMREAD_COLOR drops alpha, 8 bits the same), for grayscale a plain read again, since
    cv2.cvtColor's weights round otherwise than libpng's, which read the report's images."""
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # (H, W, 4) BGRA, 8 or 16 bits
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        return None
    top = np.iinfo(img.dtype).max
    if (img[..., 3] == top).all():
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB) if channels == 3 and img.dtype == np.uint8 else None
    alpha = img[..., 3:].astype(np.float32) / top  # (H, W, 1)
    bgr = img[..., :3].astype(np.float32) / top * alpha + (1 - alpha)
    return cv2.cvtColor(np.rint(bgr * 255).astype(np.uint8), cv2.COLOR_BGR2GRAY if channels == 1 else cv2.COLOR_BGR2RGB)


def open_regular(path: str | Path) -> io.BufferedReader:
    """`path` opened to read, or ImageError where it is no regular file: a named pipe would block
    the read until a writer comes (for ever), a device (a link to /dev/zero) would never end."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: opening a device may act on it
        raise ImageError("not a regular file")
    # Not blocking: opening a pipe waits for a writer too. O_BINARY: no newline translation on Windows.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # of the file opened, not of a name that may change
            raise ImageError("not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_image(path: str | Path, size: tuple[int, int] = IMAGE_SIZE, channels: int = 1) -> np.ndarray:
    try:
        with open_regular(path) as f:
            data = f.read()
        return decode_image(np.frombuffer(data, np.uint8), size, channels)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None
    except OSError as e:  # a broken link, no permission: skipped and named like a corrupt file
        raise ImageError(f"{path}: cannot be opened ({e.strerror or e})") from None


def _header(file: str | Path | BinaryIO) -> tuple[tuple[int, int], bool] | None:
    """(H, W) and whether it has alpha, from the file's header alone; None where it cannot be
    read; ImageError where it claims more pixels than PIL's decompression-bomb check opens."""
    try:
        with PIL.Image.open(file) as header:
            return header.size[::-1], header.mode in ALPHA_MODES or "transparency" in header.info
    except PIL.Image.DecompressionBombError:
        raise ImageError(f"more pixels than the limit of {MAX_PIXELS}") from None
    except (OSError, SyntaxError, ValueError):
        return None


def header_size(file: str | Path | BinaryIO) -> tuple[int, int] | None:
    """(H, W) from the file's header alone, or None where it cannot be read; ImageError where the
    header claims more pixels than PIL's decompression-bomb check lets it open."""
    header = _header(file)
    return None if header is None else header[0]


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(H, W) from the file's header alone, or None where it cannot be read (a bomb, a named pipe
    included)."""
    try:
        with open_regular(path) as f:
            return header_size(f)
    except (ImageError, OSError):
        return None


def to_floats(images: list[np.ndarray]) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) images -> (N, C, H, W) float32 in [0, 1], what every net reads."""
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    x = x.astype(np.float32)
    x /= 255
    return x


# Control characters, C0 and C1, and Unicode's line and paragraph separators (str.splitlines()
# breaks at each); C1 as \u0080.., since \x80 is how a name's undecodable byte 0x80 prints. And
# the backslash, doubled: else a file named `a\x09b.png`, backslash and all, would print as one
# whose name holds a tab does.
CONTROL_ESCAPES = (
    {c: f"\\x{c:02x}" for c in [*range(32), 127]}
    | {c: f"\\u{c:04x}" for c in [*range(128, 160), 0x2028, 0x2029]}
    | {ord("\\"): "\\\\"}
)


def printable(name: str | Path) -> str:
    """A file name that is not UTF-8 (its bytes kept as surrogates) with those bytes escaped
    (2345\\xff.png): a UTF-8 log file or terminal would fail on the surrogates. Control
    characters too (a\\x09b.png): a tab or newline would split predict.py's `path<TAB>text` lines.
    A backslash is doubled, so that each printed name stands for one file name."""
    return os.fsencode(str(name).translate(CONTROL_ESCAPES)).decode("utf-8", "backslashreplace")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    # Not is_file(): a broken link must be counted as unreadable, not silently left out.
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


# PIL modes a PNG holds as they are (PngImagePlugin's write modes, less the packed L;n and P;n).
PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"}


def to_pixels(item: Image, size: tuple[int, int] = IMAGE_SIZE, channels: int = 1) -> np.ndarray:
    """Any image -> uint8 pixels exactly as training saw them: arrays and PIL images go through
    the same PNG decode as files, so colour conversion and resizing match bit for bit."""
    if isinstance(item, str | Path):
        return read_image(item, size, channels)
    if isinstance(item, bytes):
        return decode_image(item, size, channels)
    if isinstance(item, PIL.Image.Image) and item.mode in ("I", "F"):
        # 32-bit pixels have no PNG form and no one scale: read by the array rules, so that a
        # 0..255 mode F image is refused rather than clipped to white.
        item = PIL.Image.fromarray(to_uint8(np.asarray(item), f"a mode {item.mode} image"))
    if isinstance(item, np.ndarray):
        try:
            item = PIL.Image.fromarray(to_uint8(_hwc(item), f"a {item.dtype} array"))
        except TypeError:
            raise ImageError(f"a {item.shape} array is not an (H, W), (H, W, 3) or (H, W, 4) image") from None
    if not isinstance(item, PIL.Image.Image):
        raise ImageError(f"cannot read a {type(item).__name__} as an image")
    return decode_image(png_bytes(item), size, channels)


def _hwc(pixels: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1|3|4), or those with a batch axis of 1 in front ((1, H, W) included) ->
    (H, W) or (H, W, 3|4). Only those axes go: a row of pixels (1, W, 3) is an image 1 px high."""
    if pixels.ndim < 2:  # no height: a row of pixels is (1, W)
        raise TypeError(f"a {pixels.shape} array has no height and width")
    while pixels.ndim > 3 and pixels.shape[0] == 1:
        pixels = pixels[0]
    while pixels.ndim > 2 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[-1] not in (3, 4) and pixels.shape[0] == 1:
        return pixels[0]
    return pixels


def to_uint8(pixels: np.ndarray, what: str) -> np.ndarray:
    """Floats are taken as [0, 1], other integers as 0..255 (as cv2/PIL give them). Out of range
    is refused, not clipped: a 0..255 float image clipped to [0, 1] would read as a blank one."""
    if pixels.dtype == np.uint8:
        return pixels
    floats = np.issubdtype(pixels.dtype, np.floating)
    if not floats and not np.issubdtype(pixels.dtype, np.integer):  # bool, complex, object
        raise ImageError(f"{what} must hold integers 0..255 or floats in [0, 1]")
    if pixels.size:
        low, high = pixels.min(), pixels.max()
        if not 0 <= low <= high <= (1 if floats else 255):  # NaN fails too
            raise ImageError(f"{what} must hold {'floats in [0, 1]' if floats else '0..255'}, found {low:g}..{high:g}")
    return (pixels * 255).round().astype(np.uint8) if floats else pixels.astype(np.uint8)


def png_bytes(image: PIL.Image.Image) -> bytes:
    """`image` as a PNG; other modes (CMYK, YCbCr, RGBX, PA...) go through RGB, which PNG holds."""
    buf, mode = io.BytesIO(), image.mode
    try:
        if mode.startswith("I;16") and mode not in PNG_MODES:  # I;16L/N: kept at 16 bits, not clipped to 8
            image = PIL.Image.fromarray(np.asarray(image).astype(np.uint16))
        elif mode not in PNG_MODES:
            image = image.convert("RGB")
        image.save(buf, format="PNG")
    except (OSError, ValueError) as e:  # a mode PIL cannot convert, an empty image, a truncated lazy file
        raise ImageError(f"cannot read a mode {mode} PIL image ({e})") from None
    return buf.getvalue()
