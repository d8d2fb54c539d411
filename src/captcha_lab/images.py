"""Reading filename-labelled captcha folders into memory."""

import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import torch

from captcha_lab.charset import PAD, Charset
from captcha_lab.errors import DataError

log = logging.getLogger(__name__)


def quiet_opencv() -> None:
    """For the command-line entry points: an unreadable file is reported once, by name, in our
    own warning (load_folder) or error (predict.py); OpenCV's "[ WARN:0@0.3] ... PNG input buffer
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


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W) images -> (N, 1, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.stack(images)).unsqueeze(1).float().div_(255)


@dataclass
class LabelledImages:
    images: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    targets: torch.Tensor  # (N, L) int64 symbol indices; shorter labels padded with PAD
    names: list[str]  # file names, for error reports and misread grids

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[index], self.targets[index], [self.names[i] for i in index.tolist()])


CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


def printable(name: str | Path) -> str:
    """A file name that is not UTF-8 (its bytes kept as surrogates) with those bytes escaped
    (2345\\xff.png): a UTF-8 log file or terminal would fail on the surrogates. Control
    characters too (a\\x09b.png): a tab or newline would split predict.py's `path<TAB>text` lines."""
    return os.fsencode(name).decode("utf-8", "backslashreplace").translate(CONTROL_ESCAPES)


def _warn_skipped(reason: str, names: list[str]) -> None:
    if names:
        shown = ", ".join(map(printable, names[:5])) + (", ..." if len(names) > 5 else "")
        log.warning("skipped %d file(s) %s: %s", len(names), reason, shown)


def _padded(indices: list[int], length: int) -> list[int]:
    return indices + [PAD] * (length - len(indices))


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    # Not is_file(): a broken link must be counted as unreadable, not silently left out.
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def load_folder(
    folder: str | Path, charset: Charset, length: int, size=IMAGE_SIZE, max_length: int | None = None
) -> LabelledImages:
    """Decode every image of a folder once; the file name (without suffix) is the label. Labels
    of `length` to `max_length` (default: exactly `length`) symbols are kept."""
    max_length = max_length or length
    files = list_images(folder)
    bad_chars = [p.name for p in files if charset.unknown(p.stem)]
    bad_length = [p.name for p in files if not charset.unknown(p.stem) and not length <= len(p.stem) <= max_length]
    bad = set(bad_chars) | set(bad_length)
    wanted = f"{length}" if max_length == length else f"{length} to {max_length}"
    _warn_skipped("with characters outside the charset", bad_chars)
    _warn_skipped(f"whose label is not {wanted} characters long", bad_length)
    files = [p for p in files if p.name not in bad]

    def read(path):
        try:
            return read_gray(path, size)
        except ImageError as e:
            return e

    with ThreadPoolExecutor(4) as pool:  # cv2 decodes without the GIL
        decoded = list(pool.map(read, files))
    unreadable = [str(d) for d in decoded if isinstance(d, ImageError)]
    _warn_skipped("that could not be read", unreadable)
    ok = [(p, d) for p, d in zip(files, decoded, strict=True) if not isinstance(d, ImageError)]
    if not ok:
        expected = f"labels of {wanted} symbols from {charset.symbols!r}"
        raise DataError(f"no usable captcha images in {folder} ({expected})")
    return LabelledImages(
        images=to_tensor([d for _, d in ok]),
        targets=torch.tensor([_padded(charset.encode(p.stem), max_length) for p, _ in ok], dtype=torch.long),
        names=[p.name for p, _ in ok],
    )
