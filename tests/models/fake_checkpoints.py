"""Checkpoints saved without training: the default config's system as plain data."""

from pathlib import Path

import torch

from captcha_lab.cli.train import build


def fake_checkpoint(make_cfg, path: Path, **spec_changes) -> Path:
    """The hyper-parameters and weights of `build(make_cfg())`'s system, its net spec changed by
    `spec_changes`, saved at `path`."""
    _, system, _ = build(make_cfg())
    hparams = dict(system.hparams)
    hparams["net_spec"] = {**hparams["net_spec"], **spec_changes}
    torch.save({"hyper_parameters": hparams, "state_dict": system.state_dict()}, path)
    return path
