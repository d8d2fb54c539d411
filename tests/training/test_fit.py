"""One in-process fit past unreadable files: last.ckpt every epoch, best score in float64."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from captcha_lab.cli.train import train
from captcha_lab.models.checkpoint import read_checkpoint

from ..conftest import ROOT
from ..data.image_files import mixed_copy


@pytest.fixture(scope="module")
def idle_run(tmp_path_factory, tiny_dir) -> Path:
    """2 epochs at lr=1e-9 (learns nothing: val/seq_acc stays 0, so best.ckpt never improves) on
    the tiny set plus unreadable files, trained by train() as train.py would run it."""
    root = tmp_path_factory.mktemp("idle_run")
    data, run = mixed_copy(tiny_dir, root / "mixed"), root / "run"
    overrides = [f"data.dir={data}", "data.synthetic=0", "epochs=2", "lr=1e-9", "~callbacks.progress_bar"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run)
        cfg.hydra.job.num = 0
    run.mkdir()
    HydraConfig.instance().set_config(cfg)
    try:
        train(cfg)
    finally:
        GlobalHydra.instance().clear()
    return run


def test_training_goes_on_past_unreadable_files(idle_run):
    assert (idle_run / "metrics.json").is_file()


def test_last_ckpt_follows_every_epoch_even_without_improvement(idle_run):
    checkpoints = idle_run / "checkpoints"
    assert read_checkpoint(checkpoints / "best.ckpt")["epoch"] == 0
    last = read_checkpoint(checkpoints / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 2 * 2)  # resuming loses at most the epoch in progress


def test_best_checkpoint_keeps_the_score_in_float64(idle_run):
    # Lightning would store a float32 score as float32, and compare later epochs against that.
    ckpt = torch.load(idle_run / "checkpoints" / "best.ckpt", weights_only=False)
    (state,) = [v for k, v in ckpt["callbacks"].items() if "val/ckpt_score" in k]
    assert state["best_model_score"].dtype == torch.float64
