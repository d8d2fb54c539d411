"""`Reader`: a trained net loaded once, reading batches of captchas (paths, bytes, arrays, PIL
images) through a backend (torch_backend.Predictor on PyTorch, onnx_backend.OnnxPredictor on ONNX
Runtime). Both backends give each frame's best class and its log-probability; the texts and
confidences are decoded here, once for both. Without PyTorch, so that the ONNX Runtime reader
never imports it."""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import PIL.Image

from captcha_lab.data.charset import Charset
from captcha_lab.data.images import IMAGE_SIZE, Image, ImageError, to_floats, to_pixels
from captcha_lab.models.ctc_lengths import fit_lengths, writes

# Images per forward pass: per-call overhead vanishes well before this on both backends, and
# one batch of float pixels stays small (docs/benchmarks.md compares batch sizes).
BATCH_SIZE = 256


class Prediction(NamedTuple):
    """`confidence` is the net's probability of its own read, which depends on its decoding.
    Per position: the product of the per-character probabilities (each position's most likely
    symbol). CTC: the probability of the best frame path, the product of every frame's most
    likely class, blanks and repeats included; other paths also spell the same text, so it is a
    lower bound on the text's probability (models.decoding.greedy_decode). A read held to the
    label lengths (models.ctc_lengths) gives the probability of its own path.
    `char_confidences`: each read character's probability (CTC: at the frame that wrote it)."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]


class Reader:
    """Prepares images as the net was trained on them (size, channels), batches them through a
    backend (`frame_scores`) and decodes the result. `min_length`: a CTC net's shortest label;
    its reads are then held between it and `length` (None: any length, as greedy decoding)."""

    def __init__(
        self,
        symbols: str,
        length: int,
        decoding: str,
        image_size: Sequence[int] = IMAGE_SIZE,
        channels: int = 1,
        batch_size: int = BATCH_SIZE,
        min_length: int | None = None,
    ):
        self.charset = Charset(symbols)
        self.length = length
        self.width = length + 1  # one more than the longest label: a too-long read stays wrong
        self.ctc = decoding == "ctc"
        self.read_lengths = (min_length, length) if self.ctc and min_length is not None else None
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = channels
        self.batch_size = batch_size

    def frame_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(B, C, H, W) float32 images in [0, 1] -> (B, T) best log-probabilities and their classes
        (per position: T = length; CTC: T frames, the blank the last class), and where reads are
        held to lengths (`read_lengths`), the (B, T, C) log-probabilities, else None."""
        raise NotImplementedError

    def prepare(self, item: Image) -> np.ndarray:
        """One image as the net reads it: uint8 (H, W), or (H, W, 3) RGB. ImageError if unreadable."""
        return to_pixels(item, self.image_size, self.channels)

    def decode(self, best: np.ndarray, index: np.ndarray, log_probs: np.ndarray | None = None) -> list[Prediction]:
        """(B, T) best log-probabilities and classes -> B predictions. CTC as
        models.decoding.CTC.decode: fit the path to `read_lengths` (given `log_probs`), merge
        repeats, drop blanks, cut at `width`."""
        if self.read_lengths is not None and log_probs is not None:
            fitted = fit_lengths(log_probs, index, *self.read_lengths)
            if fitted is not index:  # some row changed its path: its frames' probabilities too
                index, best = fitted, np.take_along_axis(log_probs, fitted[..., None], -1)[..., 0]
        keep = writes(index, len(self.charset)) if self.ctc else np.ones(index.shape, bool)
        probs = np.exp(best.astype(np.float64))
        return [
            Prediction(self.charset.decode(row[mask][: self.width]), float(p.prod()), tuple(p[mask][: self.width]))
            for row, p, mask in zip(index, probs, keep, strict=True)
        ]

    def read(self, x: np.ndarray) -> list[Prediction]:
        """(B, C, H, W) float32 images in [0, 1] -> B predictions, in one forward pass."""
        return self.decode(*self.frame_scores(x))

    def read_all(self, x: np.ndarray) -> list[Prediction]:
        """(N, C, H, W) float32 images in [0, 1], `batch_size` at a time."""
        return [p for i in range(0, len(x), self.batch_size) for p in self.read(x[i : i + self.batch_size])]

    def predict_pixels(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Prepared images (`prepare`) -> one prediction each; converted to floats a batch at a
        time, so one batch of floats is in memory, not all of them."""
        batches = (images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size))
        return [p for batch in batches for p in self.read(to_floats(batch))]

    def predict(self, items: Sequence[Image]) -> list[Prediction]:
        """One prediction per item, in order; an unreadable item raises ImageError."""
        if isinstance(items, str | bytes | Path | PIL.Image.Image | np.ndarray):
            # Iterated, a path would be read letter by letter and an (H, W) array row by row.
            raise TypeError(f"predict takes a list of images, got one {type(items).__name__}: predict([image])")
        return self.predict_pixels([self.prepare(item) for item in items])

    def predict_files(self, paths: Sequence[Path]) -> Iterator[tuple[Path, Prediction | ImageError]]:
        """(path, prediction or the error reading it), in input order; one bad file spoils nothing."""
        for start in range(0, len(paths), self.batch_size):
            chunk = paths[start : start + self.batch_size]
            decoded: list[np.ndarray | ImageError] = []
            for path in chunk:
                try:
                    decoded.append(self.prepare(path))
                except ImageError as e:
                    decoded.append(e)
            good = iter(self.predict_pixels([d for d in decoded if not isinstance(d, ImageError)]))
            for path, d in zip(chunk, decoded, strict=True):
                yield path, d if isinstance(d, ImageError) else next(good)
