"""What `charset=auto`, `data.length=null` and `data.width=null` take from a folder of labelled
captchas before any net is built: its alphabet, its shortest and longest label, and an input
width that keeps the images' median aspect ratio."""

import statistics
from collections.abc import Collection, Iterable
from pathlib import Path

from captcha_lab.data.images import image_size

AUTO = "auto"  # charset.symbols: the sorted symbols of the folder's labels
WIDTH_STEP = 8  # widths are multiples of 8: whole frames after a CRNN's three width halvings


def alphabet(labels: dict[Path, str]) -> str:
    """The sorted set of symbols in the labels (a space or other blank counts like any symbol)."""
    return "".join(sorted(set("".join(labels.values()))))


def lengths(labels: dict[Path, str]) -> tuple[int, int]:
    """The shortest and longest label."""
    sizes = [len(label) for label in labels.values()]
    return min(sizes), max(sizes)


def header_sizes(files: Iterable[Path]) -> dict[Path, tuple[int, int]]:
    """(H, W) of each file whose header reads. The others (a corrupt file, macOS's `._name.png`)
    are left out of what is inferred, or their names would add symbols and lengths; load_folder
    names them when it decodes."""
    sizes = ((p, image_size(p)) for p in files)
    return {p: s for p, s in sizes if s is not None and s[0] > 0}


def width_for(sizes: Collection[tuple[int, int]], height: int) -> int:
    """The width that keeps the median width/height ratio of the (H, W) `sizes` at `height`:
    characters keep their shape whatever a site's image size, rounded to WIDTH_STEP."""
    aspect = statistics.median(w / h for h, w in sizes) if sizes else 4.0
    return max(WIDTH_STEP, round(height * aspect / WIDTH_STEP) * WIDTH_STEP)
