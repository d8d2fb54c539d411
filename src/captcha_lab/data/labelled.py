"""Reading filename-labelled captcha folders into memory, as tensors."""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from captcha_lab.data.charset import PAD, Charset
from captcha_lab.data.images import IMAGE_SIZE, ImageError, list_images, printable, read_gray, to_floats
from captcha_lab.errors import DataError

log = logging.getLogger(__name__)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W) images -> (N, 1, H, W) float32 in [0, 1]."""
    return torch.from_numpy(to_floats(images))


@dataclass
class LabelledImages:
    images: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    targets: torch.Tensor  # (N, L) int64 symbol indices; shorter labels padded with PAD
    names: list[str]  # file names, for error reports and misread grids

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[index], self.targets[index], [self.names[i] for i in index.tolist()])


def _warn_skipped(reason: str, names: list[str]) -> None:
    if names:
        shown = ", ".join(map(printable, names[:5])) + (", ..." if len(names) > 5 else "")
        log.warning("skipped %d file(s) %s: %s", len(names), reason, shown)


def _padded(indices: list[int], length: int) -> list[int]:
    return indices + [PAD] * (length - len(indices))


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
