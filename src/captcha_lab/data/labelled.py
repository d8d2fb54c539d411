"""Reading folders of labelled captchas into memory, as tensors (data.labels says where the labels are)."""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from captcha_lab.data.charset import PAD, UNKNOWN, Charset
from captcha_lab.data.images import IMAGE_SIZE, ImageError, list_images, read_image, to_floats
from captcha_lab.data.labels import first_names, labels_of, warn_skipped
from captcha_lab.errors import DataError

log = logging.getLogger(__name__)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) images -> (N, C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(to_floats(images))


@dataclass
class LabelledImages:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    targets: torch.Tensor  # (N, L) int64 symbol indices; shorter labels padded with PAD
    names: list[str]  # file names, for error reports and misread grids

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[index], self.targets[index], [self.names[i] for i in index.tolist()])


def _padded(indices: list[int], width: int) -> list[int]:
    if len(indices) > width:  # longer still: its first symbols, then one that no read matches
        return indices[: width - 1] + [UNKNOWN]
    return indices + [PAD] * (width - len(indices))


def load_folder(
    folder: str | Path,
    charset: Charset,
    length: int,
    size=IMAGE_SIZE,
    max_length: int | None = None,
    labels: str = "auto",
    channels: int = 1,
    found: dict[Path, str] | None = None,
    keep_unknown: bool = False,
) -> LabelledImages:
    """Decode every labelled image of a folder once, at `size` (H, W) and `channels`; `labels` is
    the convention (data.labels), `found` the labels scan_labels already found there. Labels of
    `length` to `max_length` (default: exactly `length`) symbols are kept; `keep_unknown` (a test
    set) keeps every label, those with symbols outside the charset or longer than `max_length`
    as targets no read can match (so its accuracy counts every image)."""
    max_length = max_length or length
    found = found if found is not None else scan_labels(folder, labels)
    kept = _usable(folder, found, charset, length, max_length, keep_unknown)

    def read(path):
        try:
            return read_image(path, size, channels)
        except ImageError as e:
            return e

    with ThreadPoolExecutor(4) as pool:  # cv2 decodes without the GIL
        decoded = list(pool.map(read, kept))
    warn_skipped("that could not be read", [str(d) for d in decoded if isinstance(d, ImageError)])
    ok = [(p, d) for p, d in zip(kept, decoded, strict=True) if not isinstance(d, ImageError)]
    if not ok:
        wanted = _lengths(length, max_length)
        raise DataError(f"no usable captcha images in {folder} (labels of {wanted} symbols from {charset.symbols!r})")
    # A test folder's targets have a column more than the longest label the model reads, as the
    # metrics compare reads: a longer label keeps its symbols there, and reads wrong as a whole.
    width = max_length + keep_unknown
    return LabelledImages(
        images=to_tensor([d for _, d in ok]),
        targets=torch.tensor([_padded(charset.encode(kept[p], True), width) for p, _ in ok], dtype=torch.long),
        names=[p.name for p, _ in ok],
    )


def scan_labels(folder: str | Path, labels: str = "auto") -> dict[Path, str]:
    """Each image file's label, by the convention `labels` (data.labels), without decoding any."""
    return labels_of(Path(folder), list_images(folder), labels)


def _usable(
    folder, labels: dict[Path, str], charset: Charset, length: int, max_length: int, keep_unknown: bool = False
) -> dict[Path, str]:
    """The files whose label the charset can write at an allowed length; counted warnings for the rest."""
    bad_chars = [p.name for p, label in labels.items() if charset.unknown(label)]
    bad_length = [p.name for p, t in labels.items() if not length <= len(t) <= max_length]
    if keep_unknown and bad_chars and len(bad_chars) == len(labels):  # all misreads, and the loss of none
        raise DataError(
            f"{folder}: none of its {len(labels)} labels uses only the model's symbols {charset.symbols!r} (e.g. "
            f"{bad_chars[0]}): labels of another site, or another convention (data.labels)?"
        )
    if keep_unknown:  # a test folder of its own: every image scored, not only those the model can read
        _warn_scored("hold symbols the model cannot write, scored as misreads", bad_chars)
        _warn_scored(f"are not {_lengths(length, max_length)} characters long, as the model reads; scored", bad_length)
        return dict(labels)
    bad_length = [name for name in bad_length if name not in bad_chars]
    warn_skipped("with characters outside the charset (charset=auto takes the folder's own symbols)", bad_chars)
    warn_skipped(f"whose label is not {_lengths(length, max_length)} characters long", bad_length)
    bad = set(bad_chars) | set(bad_length)
    return {p: label for p, label in labels.items() if p.name not in bad}


def _warn_scored(what: str, names: list[str]) -> None:
    if names:
        log.warning("%d label(s) %s: %s", len(names), what, first_names(names))


def _lengths(length: int, max_length: int) -> str:
    return f"{length}" if max_length == length else f"{length} to {max_length}"
