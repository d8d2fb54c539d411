"""A checkpoint's net as an ONNX model beside it (best.ckpt -> best.onnx), which
onnx_backend.OnnxPredictor runs on ONNX Runtime without importing PyTorch. train.py exports its
best.ckpt when it ends; `python -m captcha_lab.cli.export CKPT` exports any other."""

import copy
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from captcha_lab import atomic
from captcha_lab.errors import CaptchaLabError, ConfigError, first_line
from captcha_lab.inference.onnx_format import INPUTS, OUTPUTS, onnx_path, sha256
from captcha_lab.models.base import CaptchaNet
from captcha_lab.models.checkpoint import load_net_and_hparams

log = logging.getLogger(__name__)
OPSET = 17


class ExportError(CaptchaLabError):
    pass


class Reads(nn.Module):
    """The exported graph: (B, C, H, W) images in [0, 1] -> (B, T) best log-probabilities and
    their classes (report_cnn: T = length; crnn: T frames, blank the last class), and the
    (B, T, C) log-probabilities they come from. The rest of decoding is numpy's (inference.reader):
    CTC's merge of repeats is no tensor op, and fitting a read's length needs every class."""

    def __init__(self, net: CaptchaNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs = self.net.log_probs(self.net(x))  # (B, T, C)
        best, index = log_probs.max(-1)  # (B, T) each
        return best, index, log_probs


def export(checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Write `out` (default: beside the checkpoint), replacing it whole; returns its path."""
    out = Path(out) if out else onnx_path(checkpoint)
    net, hparams = load_net_and_hparams(checkpoint)  # first: a missing checkpoint is named as such
    check_out(out, Path(checkpoint))
    try:
        write_onnx(net, hparams["symbols"], sha256(checkpoint), out)
    except Exception as e:  # the exporter's and onnx's own errors, many lines long
        raise ExportError(f"{checkpoint}: cannot export its net ({first_line(e)})") from None
    return out


def check_out(out: Path, checkpoint: Path) -> None:
    """Before anything is written: `out` must be a writable .onnx name and not the checkpoint
    (by any path or link: a checkpoint may be named x.onnx), which the export would replace."""
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"out: {out} is not a .onnx file name; the export would replace it")
    if out.is_dir() or not out.parent.is_dir():
        raise ConfigError(f"out: cannot write {out} (a folder, or its folder is missing)")
    if out.exists() and checkpoint.exists() and out.samefile(checkpoint):
        raise ConfigError(f"out: {out} is the checkpoint itself; the export would replace it")


def write_onnx(net: CaptchaNet, symbols: str, checkpoint_sha256: str, out: str | Path) -> None:
    net = copy.deepcopy(net).eval()  # the caller's net keeps its mode and kernels
    net.use_kernels(False)  # hand-written kernels are numba code, which no exporter can trace
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's, once per run
        # The RNN's shape checks and initial state follow the example's batch in the trace, yet the
        # graph reads any batch as PyTorch does (tests/inference/test_onnx.py).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1")
        # The CRNN's slices are left unfolded: an optimisation skipped, the same graph function
        # (tests/inference: the ONNX reads equal PyTorch's).
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1 can be constant folded")
        # dynamo=False: the torch.export-based exporter needs onnxscript and takes seconds longer.
        torch.onnx.export(
            Reads(net),
            (torch.zeros(2, net.spec["in_channels"], *net.spec["image_size"]),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=INPUTS,
            output_names=OUTPUTS,
            dynamic_axes={name: {0: "batch"} for name in INPUTS + OUTPUTS},
        )
    model = onnx.load_from_string(buf.getvalue())
    meta = {
        "checkpoint_sha256": checkpoint_sha256,
        "symbols": symbols,
        "length": str(net.spec["length"]),
        "decoding": net.decoding,
    }
    if net.spec.get("min_length") is not None:
        meta["min_length"] = str(net.spec["min_length"])
    onnx.helper.set_model_props(model, meta)
    with atomic.replacing(out) as tmp:
        onnx.save(model, tmp)


def export_quietly(checkpoint: str | Path) -> None:
    """After training: a failed export costs predict.py its fast start, not the run."""
    try:
        export(checkpoint)
    except CaptchaLabError as e:
        log.warning("no ONNX export: %s; predict.py reads it with PyTorch", e)
