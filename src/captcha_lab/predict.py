"""Reading captchas with a trained checkpoint: `Predictor.from_checkpoint(path).predict([...])`.

Imports neither Lightning nor torchvision: predict.py's start-up is mostly `import torch`."""

import csv
import glob
import io
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import PIL.Image
import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ValidationError
from torch import nn

from captcha_lab import atomic
from captcha_lab.charset import Charset
from captcha_lab.checkpoint import load_net
from captcha_lab.errors import (
    CaptchaLabError,
    ConfigError,
    DataError,
    check_checkpoint_file,
    check_keys,
    require,
    require_at_least_one,
    user_errors,
)
from captcha_lab.images import (
    IMAGE_SIZE,
    ImageError,
    decode_gray,
    list_images,
    printable,
    read_gray,
    to_tensor,
)
from captcha_lab.nets import ReportCNN
from captcha_lab.process import set_up_for_job

Image = str | Path | np.ndarray | PIL.Image.Image
# Images per forward pass. On the AVX2 EPYC, 256 read 1646-2696 images/s and 32 1473-2415 (four
# benches): 256 was the faster in each. On the AVX-512 EPYC 32 was faster (3718 against 3279), but
# both were far above 2000 (docs/benchmarks.md).
BATCH_SIZE = 256
# predict.py reads fewer images than this with PyTorch's ops for the report net's first block
# instead of its CPU kernel (the same function): the kernel's start, once per process (numba's
# import and cached code), takes ~0.7 s and it then saves ~0.06-0.12 ms per image (two measurements
# on the AVX2 EPYC): it pays off from ~6,000-12,000 images (docs/benchmarks.md).
KERNEL_MIN_IMAGES = 10_000


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


class Predictor:
    """A trained net loaded once; predicts batches of paths, arrays or PIL images."""

    def __init__(self, net: nn.Module, symbols: str, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu"):
        self.net = net.eval().to(device)
        self.charset = Charset(symbols)
        self.width = net.spec["length"] + 1  # one more than the longest label: a too-long read stays wrong
        self.batch_size = batch_size
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu", kernel: bool = True
    ):
        """`kernel=False`: the report net's first block on PyTorch's ops, not its CPU kernel (the same
        function), which skips the kernel's start (see KERNEL_MIN_IMAGES)."""
        net, symbols = load_net(path, map_location=device)
        if isinstance(net, ReportCNN) and not kernel:
            net.fused = False  # this net is the Predictor's own: nobody else's net is changed
        return cls(net, symbols, batch_size=batch_size, device=device)

    @torch.inference_mode()
    def read(self, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """(B, 1, H, W) images in [0, 1] -> B strings and (B,) confidences."""
        index, confidence = self.net.decode(self.net(x.to(self.device)), self.width)
        return self.charset.texts(index), confidence

    def _read_batches(self, batches: Iterable[torch.Tensor]) -> tuple[list[str], list[float]]:
        texts, confidences = [], []
        for x in batches:
            batch_texts, batch_confidences = self.read(x)
            texts += batch_texts
            confidences += batch_confidences.tolist()
        return texts, confidences

    def read_all(self, x: torch.Tensor) -> tuple[list[str], list[float]]:
        """(N, 1, H, W) images in [0, 1], `batch_size` at a time -> N strings and N confidences."""
        return self._read_batches(x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size))

    def predict_gray(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        # Converted a batch at a time: one batch of floats in memory, not all of them.
        batches = (to_tensor(list(images[i : i + self.batch_size])) for i in range(0, len(images), self.batch_size))
        return [Prediction(t, c) for t, c in zip(*self._read_batches(batches), strict=True)]

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


@dataclass
class PredictConfig:
    """conf/predict.yaml's keys and types (plain OmegaConf, not Hydra's ConfigStore: predict.py
    stays light), so `batch_size=abc` fails as one line naming the key."""

    ckpt_path: str = MISSING
    input: str = MISSING
    output: Optional[str] = None  # noqa: UP045 (OmegaConf schemas need typing.Optional)
    batch_size: int = BATCH_SIZE
    device: str = "cpu"


def checked(cfg: DictConfig) -> DictConfig:
    check_keys(cfg, PredictConfig)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(PredictConfig), cfg)
    except ValidationError as e:
        raise ConfigError(f"{e.full_key}: {str(e).splitlines()[0]}") from None
    require_at_least_one(cfg, "batch_size")
    require(cfg, "ckpt_path", "input")
    check_checkpoint_file(cfg, "ckpt_path")
    check_device(cfg.device)
    # Before any work, not after every image is read: the CSV must be writable.
    if cfg.output and (Path(cfg.output).is_dir() or not Path(cfg.output).parent.is_dir()):
        raise ConfigError(f"output: cannot write a CSV file at {cfg.output} (a folder, or its folder is missing)")
    return cfg


def check_output(output: str, ckpt_path: str, inputs: Sequence[Path]) -> None:
    """Refuse an `output` that is no .csv name (e.g. a run's last.ckpt or metrics.json) or that
    is the checkpoint or an input image, by any path, link or hard link (the same file, not the
    same name): the CSV would replace it."""
    if not output.lower().endswith(".csv"):
        raise ConfigError(f"output: {output} is not a .csv file name; predict.py writes a CSV there")
    try:
        target = os.stat(output)
    except OSError:  # not there yet: neither the checkpoint (it must exist) nor an input with data to lose
        return
    for path, what in [(ckpt_path, "the checkpoint (ckpt_path)"), *((p, f"the input image {p}") for p in inputs)]:
        try:
            same = os.path.samestat(target, os.stat(path))
        except OSError:  # a broken link among the inputs: not the existing output
            continue
        if same:
            raise ConfigError(f"output: {output} is {what}; the CSV would overwrite it")


def check_device(device: str) -> None:
    # Allocating on it is the one test that covers every kind and index (cuda:3 on one GPU, mps).
    try:
        if torch.empty(0, device=device).is_meta:
            raise RuntimeError("it holds no data")
    except Exception as e:  # RuntimeError, AssertionError (no XPU), NotImplementedError (mps), ImportError (hpu)
        raise ConfigError(f"device: {device!r} is not usable here ({str(e).splitlines()[0]})") from None


def run(cfg: DictConfig) -> int:
    """predict.py: print `path<TAB>text<TAB>confidence` per input image; returns how many could not be read."""
    with user_errors():
        cfg = checked(cfg)
        paths = expand_inputs(str(cfg.input))
        if cfg.output:
            check_output(str(cfg.output), str(cfg.ckpt_path), paths)
        set_up_for_job()
        kernel = len(paths) >= KERNEL_MIN_IMAGES
        predictor = Predictor.from_checkpoint(
            cfg.ckpt_path, batch_size=cfg.batch_size, device=cfg.device, kernel=kernel
        )
        rows, failed = [], 0
        for path, result in predictor.predict_files(paths):
            if isinstance(result, Prediction):
                print(f"{printable(path)}\t{result.text}\t{result.confidence:.4g}", flush=True)
                rows.append([str(path), result.text, f"{result.confidence:.4g}", ""])
            else:
                failed += 1
                print(f"error: {printable(str(result))}", file=sys.stderr, flush=True)
                rows.append([str(path), "", "", str(result)])
        if cfg.output:
            write_csv(str(cfg.output), [["path", "text", "confidence", "error"], *rows])
        return failed


def write_csv(path: str, rows: list[list[str]]) -> None:
    # surrogateescape: a file name that is not UTF-8 goes back out as its own bytes (stdout and
    # stderr show them escaped: images.printable).
    with atomic.writing(path, errors="surrogateescape") as f:
        csv.writer(f).writerows(rows)
