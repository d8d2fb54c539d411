"""Loading trained systems for inference without executing pickled code."""

import pickle
from pathlib import Path

import torch

from captcha_lab.errors import CaptchaLabError
from captcha_lab.nets import build_net
from captcha_lab.system import CaptchaSystem


class CheckpointError(CaptchaLabError):
    pass


def load_system(path: str | Path, map_location: str | torch.device = "cpu") -> CaptchaSystem:
    """A trained CaptchaSystem in eval mode. `weights_only=True` refuses any pickled object that
    is not plain data, so a tampered checkpoint is rejected instead of run."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first_line = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: refused, not a plain-data checkpoint ({first_line})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hparams or "net_spec" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a captcha-lab checkpoint (no net_spec in its hyper-parameters)")
    system = CaptchaSystem(net=build_net(hparams["net_spec"]), symbols=hparams["symbols"])
    system.load_state_dict(ckpt["state_dict"])
    return system.eval()
