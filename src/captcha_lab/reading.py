"""What every way of reading captchas shares, without PyTorch: turning files, arrays and PIL
images into the (H, W) uint8 pixels training saw, and `Reader`, which batches them through a
backend (captcha_lab.predict.Predictor on PyTorch, captcha_lab.onnx_reader.OnnxPredictor on
ONNX Runtime)."""

import glob
import hashlib
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import PIL.Image

from captcha_lab.charset import Charset
from captcha_lab.errors import CaptchaLabError, DataError
from captcha_lab.images import IMAGE_SIZE, ImageError, decode_gray, list_images, read_gray

Image = str | Path | np.ndarray | PIL.Image.Image
# Images per forward pass. On ONNX Runtime (predict.py's default reader) 256 and 32 read alike on
# the AVX2 EPYC: 2414 and 2399 images/s. On PyTorch there, 256 read 1646-2696 images/s and 32
# 1473-2415 (four benches): 256 was the faster in each. On the AVX-512 EPYC 32 was faster (3718
# against 3279), but both were far above 2000 (docs/benchmarks.md).
BATCH_SIZE = 256


class InputError(CaptchaLabError):
    pass


class Prediction(NamedTuple):
    """`confidence` is the net's probability of its own read, which depends on the model kind.
    report_cnn: the product of the `length` per-character probabilities (each position's most
    likely symbol). crnn (CTC): the probability of the best frame path, the product of every
    frame's most likely class, blanks and repeats included; other paths also spell the same text,
    so it is a lower bound on the text's probability (ctc.greedy_decode)."""

    text: str
    confidence: float


# PIL modes a PNG holds as they are (PngImagePlugin's write modes, less the packed L;n and P;n).
PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"}


def to_gray(item: Image, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """Any image -> (H, W) uint8 exactly as training saw it: arrays and PIL images go through
    the same PNG decode as files, so colour conversion and resizing match bit for bit."""
    if isinstance(item, str | Path):
        return read_gray(item, size)
    if isinstance(item, PIL.Image.Image) and item.mode in ("I", "F"):
        # 32-bit pixels have no PNG form and no one scale: read by the array rules, so that a
        # 0..255 mode F image is refused rather than clipped to white.
        item = PIL.Image.fromarray(to_uint8(np.asarray(item), f"a mode {item.mode} image"))
    if isinstance(item, np.ndarray):
        try:  # (H, W), (H, W, 3) RGB or (H, W, 4) RGBA, with or without axes of 1
            item = PIL.Image.fromarray(to_uint8(item, f"a {item.dtype} array").squeeze())
        except TypeError:
            raise ImageError(f"a {item.shape} array is not an (H, W), (H, W, 3) or (H, W, 4) image") from None
    if not isinstance(item, PIL.Image.Image):
        raise ImageError(f"cannot read a {type(item).__name__} as an image")
    return decode_gray(png_bytes(item), size)


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


def expand_inputs(spec: str) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob pattern (matches, sorted)."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        try:
            return list_images(path)  # a broken link included: an input that cannot be read
        except DataError:
            raise InputError(f"input: no image files in folder {spec}") from None
    matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
    if not matches:
        raise InputError(f"input: no file, folder or glob match for {spec}")
    return matches


def onnx_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's ONNX export lives: beside it (checkpoints/best.ckpt -> best.onnx)."""
    return Path(checkpoint).with_suffix(".onnx")


def sha256(path: str | Path) -> str:
    """What an export records of its checkpoint, so that a replaced checkpoint is noticed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Reader:
    """A trained net loaded once; predicts batches of paths, arrays or PIL images. Subclasses
    say how a batch of pixels becomes texts (`read_pixels`)."""

    def __init__(self, symbols: str, length: int, batch_size: int = BATCH_SIZE):
        self.charset = Charset(symbols)
        self.width = length + 1  # one more than the longest label: a too-long read stays wrong
        self.batch_size = batch_size

    def read_pixels(self, images: Sequence[np.ndarray]) -> tuple[list[str], list[float]]:
        """(H, W) uint8 images, at most `batch_size` -> their texts and confidences."""
        raise NotImplementedError

    def batched(self, x: Sequence, read) -> tuple[list[str], list[float]]:
        """`read` (a batch -> texts, confidences) over `x`, `batch_size` items at a time."""
        texts, confidences = [], []
        for i in range(0, len(x), self.batch_size):
            batch_texts, batch_confidences = read(x[i : i + self.batch_size])
            texts += batch_texts
            confidences += batch_confidences
        return texts, confidences

    def predict_gray(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        # Converted a batch at a time: one batch of floats in memory, not all of them.
        texts, confidences = self.batched(images, self.read_pixels)
        return [Prediction(t, c) for t, c in zip(texts, confidences, strict=True)]

    def predict(self, items: Sequence[Image]) -> list[Prediction]:
        """One prediction per item, in order; an unreadable item raises ImageError."""
        return self.predict_gray([to_gray(item) for item in items])

    def predict_files(self, paths: Sequence[Path]) -> Iterator[tuple[Path, Prediction | ImageError]]:
        """(path, prediction or the error reading it), in input order; one bad file spoils nothing."""
        for start in range(0, len(paths), self.batch_size):
            chunk = paths[start : start + self.batch_size]
            decoded: list[np.ndarray | ImageError] = []
            for path in chunk:
                try:
                    decoded.append(read_gray(path))
                except ImageError as e:
                    decoded.append(e)
            good = iter(self.predict_gray([d for d in decoded if not isinstance(d, ImageError)]))
            for path, d in zip(chunk, decoded, strict=True):
                yield path, d if isinstance(d, ImageError) else next(good)
