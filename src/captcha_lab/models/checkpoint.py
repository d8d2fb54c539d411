"""Reading checkpoints without executing pickled code and without Lightning (whose import would
double a PyTorch reader's start-up): the net rebuilt from its spec, and the run's settings."""

import pickle
from pathlib import Path
from typing import Any

import torch

from captcha_lab.errors import CaptchaLabError
from captcha_lab.models.base import CaptchaNet
from captcha_lab.models.registry import build_net


class CheckpointError(CaptchaLabError):
    pass


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A captcha-lab checkpoint as plain data. `weights_only=True` refuses any pickled object that
    is not plain data, so a tampered checkpoint is rejected instead of run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip (or, before torch 1.6, a protocol-2 pickle): anything else, such as
    # an image passed by mistake, would be refused as "not plain data", as if it were tampered with.
    if not head.startswith((b"PK\x03\x04", b"\x80\x02")):
        raise CheckpointError(f"{path}: not a checkpoint (no torch.save file)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message is a paragraph; its gist is the unpickler's first sentence.
        reason = str(e).split("WeightsUnpickler error:")[-1].strip().split(". ")[0].splitlines()[0]
        raise CheckpointError(f"{path}: refused, not a plain-data checkpoint ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:  # e.g. a copy cut short
        raise CheckpointError(f"{path}: not a readable checkpoint, perhaps truncated or damaged ({gist(e)})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hparams or "net_spec" not in hparams or "symbols" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a captcha-lab checkpoint (no net_spec in its hyper-parameters)")
    symbols = hparams["symbols"]
    for ok, what in [
        (isinstance(symbols, str) and symbols and len(set(symbols)) == len(symbols), f"symbols {symbols!r}"),
        (isinstance(hparams["net_spec"], dict), f"net_spec {hparams['net_spec']!r}"),
        (isinstance(ckpt["state_dict"], dict), f"a state_dict of type {type(ckpt['state_dict']).__name__}"),
    ]:
        if not ok:  # written by hand or by another program: readers would fail far from here
            raise CheckpointError(f"{path}: not a captcha-lab checkpoint ({what})")
    return ckpt


def check_matches(path: str | Path, ckpt: dict, symbols: str | None = None, kind: str | None = None) -> None:
    """Refuse a checkpoint trained for another charset or net kind, naming both."""
    hparams = ckpt["hyper_parameters"]
    if symbols is not None and hparams["symbols"] != symbols:
        raise CheckpointError(f"{path}: trained on charset {hparams['symbols']!r}, but this run uses {symbols!r}")
    found = hparams["net_spec"].get("kind")
    if kind is not None and found != kind:
        raise CheckpointError(f"{path}: holds a {found!r} model, but this run uses {kind!r}")


def load_net(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    symbols: str | None = None,
    kind: str | None = None,
) -> tuple[CaptchaNet, str]:
    """A trained net in eval mode and the symbols it reads; `symbols`/`kind`, when given, must
    match the checkpoint's."""
    net, hparams = load_net_and_hparams(path, map_location, symbols, kind)
    return net, hparams["symbols"]


def load_net_and_hparams(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    symbols: str | None = None,
    kind: str | None = None,
) -> tuple[CaptchaNet, dict[str, Any]]:
    """load_net, with the system's hyper-parameters (symbols, label_smoothing, net_spec)."""
    return net_and_hparams(path, read_checkpoint(path, map_location), symbols, kind)


def net_and_hparams(
    path: str | Path, ckpt: dict[str, Any], symbols: str | None = None, kind: str | None = None
) -> tuple[CaptchaNet, dict[str, Any]]:
    """load_net_and_hparams of a checkpoint already read (`path` names it in errors)."""
    check_matches(path, ckpt, symbols, kind)
    hparams = ckpt["hyper_parameters"]
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net = rebuilt(path, hparams["net_spec"], weights)
    return net.eval(), hparams


def rebuilt(path: str | Path, spec: dict, weights: dict | None = None) -> CaptchaNet:
    try:
        net = build_net(spec)
        if weights is not None:
            net.load_state_dict(weights)
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild its model ({gist(e)})") from None
    return net


def gist(e: Exception, limit: int = 200) -> str:
    """A library's message on one line, cut to `limit` characters: load_state_dict's first line
    ("Error(s) in loading state_dict for CRNN:") says nothing without the next, which names the keys."""
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
