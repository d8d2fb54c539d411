"""Reading checkpoints: pickles refused, other charsets and kinds named, broken files refused."""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from captcha_lab.cli.train import train
from captcha_lab.data.charset import REPORT36, Charset
from captcha_lab.models.checkpoint import CheckpointError, load_net, read_checkpoint
from captcha_lab.training.system import load_system

from .fake_checkpoints import fake_checkpoint

CHARSET = Charset()


class RunsCode:
    """Unpickling this calls open(marker, 'w'): a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickle_payload_is_refused_not_run(make_cfg, tmp_path, capsys):
    path = fake_checkpoint(make_cfg, tmp_path / "evil.ckpt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["callbacks"] = RunsCode(tmp_path / "pwned")
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"refused, not a plain-data checkpoint \(.*GLOBAL io.open"):
        load_system(path)
    with pytest.raises(SystemExit) as stopped:  # resuming training from it is refused too
        train(make_cfg(f"ckpt_path={path}"))
    assert stopped.value.code == 2 and "refused, not a plain-data checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()
    torch.load(path, weights_only=False)  # the control: an unsafe load does run the payload
    assert (tmp_path / "pwned").exists()


def test_checkpoint_of_other_charset_or_kind_is_a_clear_error(make_cfg, tmp_path):
    path = fake_checkpoint(make_cfg, tmp_path / "v2.ckpt")
    assert load_system(path, symbols=CHARSET.symbols, kind="report_cnn").hparams["symbols"] == CHARSET.symbols
    with pytest.raises(
        CheckpointError, match=f"trained on charset '{CHARSET.symbols}', but this run uses '{REPORT36}'"
    ):
        load_system(path, symbols=REPORT36)
    other = fake_checkpoint(make_cfg, tmp_path / "other.ckpt", kind="vit")  # a kind this version lacks
    with pytest.raises(CheckpointError, match="holds a 'vit' model, but this run uses 'report_cnn'"):
        load_system(other, kind="report_cnn")
    with pytest.raises(CheckpointError, match="cannot rebuild its model .*unknown net kind 'vit'"):
        load_system(other)


def test_truncated_and_foreign_checkpoints_are_clear_errors(make_cfg, tmp_path):
    whole = fake_checkpoint(make_cfg, tmp_path / "whole.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(whole[: len(whole) // 2])  # what a non-atomic write killed midway leaves
    with pytest.raises(
        CheckpointError, match=r"cut.ckpt: not a readable checkpoint, perhaps truncated or damaged \(.+\)$"
    ):
        read_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a captcha-lab checkpoint"):
        read_checkpoint(tmp_path / "foreign.ckpt")
    image = tmp_path / "2b827.png"  # a captcha passed as ckpt_path by mistake
    cv2.imwrite(str(image), np.full((50, 200), 255, np.uint8))
    with pytest.raises(CheckpointError, match=f"^{image}: not a checkpoint \\(no torch.save file\\)$"):
        read_checkpoint(image)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"symbols": ""}, "symbols ''"),
        ({"symbols": "aab"}, "symbols 'aab'"),
        ({"symbols": 7}, "symbols 7"),
        ({"net_spec": "report_cnn"}, "net_spec 'report_cnn'"),
        ({"state_dict": []}, "a state_dict of type list"),
    ],
)
def test_a_checkpoint_with_malformed_contents_is_a_clear_error(make_cfg, tmp_path, change, what):
    # Each was a ValueError, TypeError or AttributeError traceback in predict.py, eval.py or ckpt_init=.
    path = fake_checkpoint(make_cfg, tmp_path / "odd.ckpt")
    ckpt = torch.load(path, weights_only=True)
    for key, value in change.items():
        (ckpt if key == "state_dict" else ckpt["hyper_parameters"])[key] = value
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: not a captcha-lab checkpoint ({what})")):
        read_checkpoint(path)


def test_a_loaded_net_is_in_eval_mode(make_cfg, tmp_path):
    net, symbols = load_net(fake_checkpoint(make_cfg, tmp_path / "run.ckpt"))  # dropout off, BatchNorm's statistics
    assert not net.training and not any(m.training for m in net.modules()) and symbols


def test_a_checkpoint_whose_weights_do_not_fit_its_net_names_the_key(make_cfg, tmp_path):
    # load_state_dict's first line ("Error(s) in loading state_dict for ReportCNN:") names nothing.
    path = fake_checkpoint(make_cfg, tmp_path / "odd.ckpt")
    ckpt = torch.load(path, weights_only=True)
    name = next(k for k in ckpt["state_dict"] if k.endswith(".weight"))
    del ckpt["state_dict"][name]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="cannot rebuild its model") as refused:
        load_net(path)
    message = str(refused.value)
    assert name.removeprefix("net.") in message and "\n" not in message and len(message) < len(str(path)) + 260
