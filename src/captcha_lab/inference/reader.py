"""`Reader`: a trained net loaded once, reading batches of captchas (paths, arrays, PIL images)
through a backend (torch_backend.Predictor on PyTorch, onnx_backend.OnnxPredictor on ONNX
Runtime). Without PyTorch, so that the ONNX Runtime reader never imports it."""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from captcha_lab.data.charset import Charset
from captcha_lab.data.images import Image, ImageError, read_gray, to_gray

# Images per forward pass: per-call overhead vanishes well before this on both backends, and
# one batch of float pixels stays small (docs/benchmarks.md compares batch sizes).
BATCH_SIZE = 256


class Prediction(NamedTuple):
    """`confidence` is the net's probability of its own read, which depends on its decoding.
    Per position: the product of the per-character probabilities (each position's most likely
    symbol). CTC: the probability of the best frame path, the product of every frame's most
    likely class, blanks and repeats included; other paths also spell the same text, so it is a
    lower bound on the text's probability (models.decoding.greedy_decode)."""

    text: str
    confidence: float


class Reader:
    """Batches items through a backend; subclasses say how a batch of pixels becomes texts
    (`read_pixels`)."""

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
