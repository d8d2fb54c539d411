"""What `charset=auto`, `data.length=null` and `data.width=null` take from a folder of labelled
captchas before any net is built: its alphabet, its shortest and longest label, and an input
width that keeps the images' median aspect ratio."""

import statistics
from pathlib import Path

from captcha_lab.data.images import image_size

AUTO = "auto"  # charset.symbols: the sorted symbols of the folder's labels
WIDTH_STEP = 8  # widths are multiples of 8: whole frames after a CRNN's three width halvings
ASPECT_SAMPLE = 500  # headers read for the median aspect: a folder's images rarely vary much


def alphabet(labels: dict[Path, str]) -> str:
    """The sorted set of symbols in the labels (a space or other blank counts like any symbol)."""
    return "".join(sorted(set("".join(labels.values()))))


def lengths(labels: dict[Path, str]) -> tuple[int, int]:
    """The shortest and longest label."""
    sizes = [len(label) for label in labels.values()]
    return min(sizes), max(sizes)


def width_for(files: list[Path], height: int) -> int:
    """The width that keeps the median width/height ratio of (a spread sample of) `files` at
    `height`: characters keep their shape whatever a site's image size, rounded to WIDTH_STEP."""
    step = max(1, len(files) // ASPECT_SAMPLE)
    sizes = [s for s in map(image_size, files[::step]) if s is not None and s[0] > 0]
    aspect = statistics.median(w / h for h, w in sizes) if sizes else 4.0  # unreadable: load_folder names them
    return max(WIDTH_STEP, round(height * aspect / WIDTH_STEP) * WIDTH_STEP)
