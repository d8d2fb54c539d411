"""Checkpoints: loading without executing pickled code (and without Lightning), compatibility checks."""

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from captcha_lab.errors import CaptchaLabError, first_line
from captcha_lab.nets import build_net

if TYPE_CHECKING:
    from captcha_lab.system import CaptchaSystem


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
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e or type(e).__name__})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hparams or "net_spec" not in hparams or "symbols" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a captcha-lab checkpoint (no net_spec in its hyper-parameters)")
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
) -> tuple[nn.Module, str]:
    """A trained net in eval mode and the symbols it reads, without importing Lightning (which
    would double predict.py's start-up); `symbols`/`kind`, when given, must match the checkpoint's."""
    net, hparams = load_net_and_hparams(path, map_location, symbols, kind)
    return net, hparams["symbols"]


def load_net_and_hparams(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    symbols: str | None = None,
    kind: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """load_net, with the system's hyper-parameters (symbols, label_smoothing, net_spec)."""
    ckpt = read_checkpoint(path, map_location)
    check_matches(path, ckpt, symbols, kind)
    hparams = ckpt["hyper_parameters"]
    weights = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net = rebuilt(path, hparams["net_spec"], weights)
    return net.eval(), hparams


def rebuilt(path: str | Path, spec: dict, weights: dict | None = None) -> nn.Module:
    try:
        net = build_net(spec)
        if weights is not None:
            net.load_state_dict(weights)
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild its model ({first_line(e)})") from None
    return net


# What decides which images are train, val and test. A resume must draw the same split, or it
# would test on images it trained on before (ckpt_init= starts afresh from the weights instead).
SPLIT_KEYS = (
    "dir test_dir seed val_fraction test_fraction folds fold length max_length synthetic synthetic_seed".split()
)


def split_changes(ckpt: dict, data: dict) -> list[str]:
    """The SPLIT_KEYS whose value in `data` differs from the checkpoint's run (folders by path)."""
    theirs = ckpt.get("datamodule_hyper_parameters") or {}
    changed = []
    for key in (k for k in SPLIT_KEYS if k in theirs and k in data):
        there, here = theirs[key], data[key]
        if key.endswith("dir") and None not in (there, here):
            there, here = str(Path(there).resolve()), str(Path(here).resolve())
        if there != here:
            changed.append(key)
    return changed


def images_changed(path: str | Path, ckpt: dict, datamodule) -> str | None:
    """Why the images `datamodule` (after setup) splits are not those the run split, or None.
    The split settings are not enough: an image added to or removed from the folder since
    reshuffles every split. Lightning keeps the data module's state_dict() under its class name."""
    there, source = ckpt.get(type(datamodule).__qualname__), datamodule.source
    if not there or there == source:  # a checkpoint from before the record has none
        return None
    now = f"{source['images']}" if source["images"] != there["images"] else f"{source['images']} others"
    return f"{path}: its run split {there['images']} usable images of {datamodule.folder}, which now holds {now}"


def check_same_split(path: str | Path, ckpt: dict, data: dict) -> None:
    theirs = ckpt.get("datamodule_hyper_parameters") or {}
    for key in split_changes(ckpt, data):
        raise CheckpointError(
            f"{path}: trained on another split (data.{key}={theirs[key]!r} there, {data[key]!r} here);"
            " resume with its data settings, or start afresh from its weights with ckpt_init="
        )


def check_resumable(path: str | Path, system: "CaptchaSystem", datamodule=None) -> int:
    """Before `fit(ckpt_path=...)`: the checkpoint must be plain data and fit `system`. Lightning
    would otherwise fail with a state-dict traceback, or (same sizes, other symbols or another
    activation) silently train a model whose outputs mean other things; and `datamodule` must
    split the same images with the same settings as the run did (the cheap checks first: the
    images are read last, here, as fit would read them). Returns its epochs done as Lightning's
    fit loop reads them at a resume (it stops once they reach max_epochs); one saved during its
    last validation counts one more there (train() checks after fit for that)."""
    ckpt = read_checkpoint(path)
    check_matches(path, ckpt, system.hparams["symbols"], system.hparams["net_spec"]["kind"])
    if datamodule is not None:
        check_same_split(path, ckpt, dict(datamodule.hparams))
    ours_spec = system.hparams["net_spec"]
    theirs_spec = rebuilt(path, ckpt["hyper_parameters"]["net_spec"]).spec  # an older one's defaults filled in
    for key in (k for k in ours_spec if theirs_spec.get(k) != ours_spec[k]):
        raise CheckpointError(
            f"{path}: holds another net (model.{key}={theirs_spec.get(key)!r} there, {ours_spec[key]!r} here);"
            " resume with its model settings"
        )
    theirs = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
    ours = {k: tuple(v.shape) for k, v in system.state_dict().items()}
    for key in sorted(theirs.keys() | ours.keys()):
        if theirs.get(key) != ours.get(key):
            raise CheckpointError(
                f"{path}: does not fit this model ({key} is {theirs.get(key)} there, {ours.get(key)} here)"
            )
    if datamodule is not None:  # last: it reads (or generates) every image
        datamodule.prepare_data()
        datamodule.setup("fit")  # fit's own setup then reuses what it read
        if why := images_changed(path, ckpt, datamodule):
            raise CheckpointError(f"{why}: not the same split; resume with the folder as it was")
    progress = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    return int(progress.get("current", {}).get("processed", 0))
