"""Decoding captcha image files, without PyTorch (predict.py's ONNX path never imports it);
captcha_lab.labelled turns folders of them into tensors."""

import io
import os
from pathlib import Path

import cv2
import numpy as np
import PIL.Image

from captcha_lab.errors import DataError


def quiet_opencv() -> None:
    """For the command-line entry points: an unreadable file is reported once, by name, in our
    own warning (labelled.load_folder) or error (predict.py); OpenCV's "[ WARN:0@0.3] ... PNG input buffer
    is incomplete" only repeated it. Process-wide, hence not done on import."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGE_SIZE = (50, 200)  # (H, W), as in the report
MAX_PIXELS = 50_000_000  # refuse decompression bombs long before they reach memory


class ImageError(Exception):
    pass


def decode_gray(data: bytes | np.ndarray, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """Encoded image bytes -> (H, W) uint8 grayscale, resized to `size` only when needed."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if buf.size == 0:
        raise ImageError("empty file")
    try:  # read only the header first: a decompression bomb is refused before it is decoded
        with PIL.Image.open(io.BytesIO(buf.tobytes())) as header:
            w, h = header.size
    except PIL.Image.DecompressionBombError:
        raise ImageError(f"more pixels than the limit of {MAX_PIXELS}") from None
    except (OSError, SyntaxError, ValueError):
        raise ImageError("not a readable image") from None
    if w * h > MAX_PIXELS:
        raise ImageError(f"{w}x{h} pixels is more than the limit of {MAX_PIXELS}")
    # cv2's grayscale read is what the report used; alpha (all opaque in captcha_v2) is dropped.
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ImageError("not a readable image")
    if img.shape != size:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return img


def read_gray(path: str | Path, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    try:
        return decode_gray(np.fromfile(path, np.uint8), size)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None
    except OSError as e:  # a broken link, no permission: skipped and named like a corrupt file
        raise ImageError(f"{path}: cannot be opened ({e.strerror or e})") from None


def to_floats(images: list[np.ndarray]) -> np.ndarray:
    """uint8 (H, W) images -> (N, 1, H, W) float32 in [0, 1], what every net reads."""
    x = np.stack(images)[:, None].astype(np.float32)
    x /= 255
    return x


CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


def printable(name: str | Path) -> str:
    """A file name that is not UTF-8 (its bytes kept as surrogates) with those bytes escaped
    (2345\\xff.png): a UTF-8 log file or terminal would fail on the surrogates. Control
    characters too (a\\x09b.png): a tab or newline would split predict.py's `path<TAB>text` lines."""
    return os.fsencode(name).decode("utf-8", "backslashreplace").translate(CONTROL_ESCAPES)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    # Not is_file(): a broken link must be counted as unreadable, not silently left out.
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files
