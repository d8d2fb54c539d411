"""In-process fits: past unreadable files, last.ckpt every epoch, best score in float64; the
schedule-free optimizer's checkpoints hold its evaluation weights."""

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


def _fit(run: Path, overrides: list[str]) -> Path:
    """train() on `overrides`, as train.py would run it, into `run`."""
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


@pytest.fixture(scope="module")
def idle_run(tmp_path_factory, tiny_dir) -> Path:
    """2 epochs at lr=1e-9 (learns nothing: val/seq_acc stays 0, so best.ckpt never improves) on
    the tiny set plus unreadable files."""
    root = tmp_path_factory.mktemp("idle_run")
    data = mixed_copy(tiny_dir, root / "mixed")
    return _fit(
        root / "run", [f"data.dir={data}", "data.synthetic=0", "epochs=2", "lr=1e-9", "~callbacks.progress_bar"]
    )


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


@pytest.mark.parametrize("validations", ["1.0", "0.5"])  # once an epoch, and also mid-epoch
def test_schedule_free_checkpoints_hold_the_evaluation_weights(tmp_path, tiny_dir, validations):
    overrides = [f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=2", "optimizer=schedule_free"]
    overrides += [f"+trainer.val_check_interval={validations}", "batch_size=8", "~callbacks.progress_bar"]
    checkpoints = _fit(tmp_path / "run", overrides) / "checkpoints"
    for name in ("best.ckpt", "last.ckpt"):
        ckpt = torch.load(checkpoints / name, weights_only=False)
        # train_mode False: saved after the swap to the averaged weights (a resume swaps back).
        assert {g["train_mode"] for g in ckpt["optimizer_states"][0]["param_groups"]} == {False}, name
        # Their BatchNorm statistics: re-estimated in one pass over the last training images.
        tracked = {k: int(v) for k, v in ckpt["state_dict"].items() if k.endswith("num_batches_tracked")}
        assert tracked and set(tracked.values()) == {1}, (name, tracked)
