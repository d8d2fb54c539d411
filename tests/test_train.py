import json
import math
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from captcha_lab import pipeline
from captcha_lab.pipeline import train
from captcha_lab.plots import read_history
from captcha_lab.system import load_system

from .conftest import REAL_DATA, ROOT

METRIC_KEYS = {
    "test/loss",
    "test/char_acc",
    "test/seq_acc",
    "val/seq_acc_best",
    "val/loss_best",
    "val/seq_acc",
    "val/char_acc",
    *(f"test/acc_pos{i}" for i in range(1, 6)),
}


@pytest.mark.parametrize(
    "overrides",
    [
        ["optimizer=adam"],
        ["optimizer=sgd"],
        ["optimizer=rmsprop"],
        ["model.head_activation=sigmoid"],
        ["trainer.precision=bf16-mixed"],
        ["activation=gelu", "charset=report36"],
        ["callbacks.interrupt=null"],  # `=null` switches one callback off
    ],
)
def test_fast_dev_run(make_cfg, overrides):
    cfg = make_cfg(*overrides, "+trainer.fast_dev_run=true")
    score = train(cfg)
    assert 0.0 <= score <= 1.0
    metrics = json.loads((Path(cfg.hydra.runtime.output_dir) / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics.keys()


class StopInSecondValidation(L.Callback):
    """Ctrl-C during epoch 1's validation: interrupted.ckpt is saved after the last train batch."""

    def on_validation_batch_end(self, trainer, *args, **kwargs) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_resume_from_an_interrupted_validation_logs_no_empty_train_epoch(make_cfg):
    stop = "+callbacks.stop._target_=tests.test_train.StopInSecondValidation"
    with pytest.raises(SystemExit):  # Lightning stops cleanly on Ctrl-C; the pipeline then exits
        train(make_cfg("epochs=3", stop))
    run_dir = Path(make_cfg().hydra.runtime.output_dir)
    train(make_cfg("epochs=3", f"ckpt_path={run_dir / 'checkpoints' / 'interrupted.ckpt'}"))
    history = read_history(run_dir)
    # Epoch 1's train metrics would be NaN/0 from empty accumulators: none are logged for it.
    for tag in ("train/loss", "train/char_acc", "train/seq_acc"):
        assert len(history[tag]) == 2 and all(math.isfinite(v) for v in history[tag].values()), tag


def test_resume_of_a_run_stopped_in_its_last_validation_is_refused(make_cfg, capsys):
    # Its epochs done read one fewer than Lightning counts at the resume, so the check before fit
    # lets it through; fit then trains nothing and the check after it refuses.
    stop = "+callbacks.stop._target_=tests.test_train.StopInSecondValidation"
    with pytest.raises(SystemExit):
        train(make_cfg("epochs=2", stop))
    ckpt = Path(make_cfg().hydra.runtime.output_dir) / "checkpoints" / "interrupted.ckpt"
    with pytest.raises(SystemExit) as stopped:
        train(make_cfg("epochs=2", f"ckpt_path={ckpt}"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: epochs=2: {ckpt} has trained as many; nothing left to train\n")


def test_tilde_logger_logs_nothing(make_cfg):
    cfg = make_cfg("~logger")  # one real epoch: fast_dev_run would swap any logger for a dummy
    train(cfg)
    run_dir = Path(cfg.hydra.runtime.output_dir)
    assert (run_dir / "metrics.json").is_file()
    # No Lightning default logger in its place (lightning_logs/), no event files, no plots.
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "metrics.json", "timing.json"]


def test_crnn_variable_length_fast_dev_run(make_cfg, mixed_length_dir):
    cfg = make_cfg(
        "model=crnn",
        "scheduler=onecycle",
        "augment=strong",
        f"data.dir={mixed_length_dir}",
        "data.length=4",
        "data.max_length=6",
        "data.folds=3",
        "data.fold=1",
        "+trainer.fast_dev_run=true",
    )
    score = train(cfg)
    assert 0.0 <= score <= 1.0
    metrics = json.loads((Path(cfg.hydra.runtime.output_dir) / "metrics.json").read_text())
    assert {"test/seq_acc", "test/char_acc", *(f"test/acc_pos{i}" for i in range(1, 7))} <= metrics.keys()


def test_report_cnn_refuses_variable_length(make_cfg, capsys):
    cfg = make_cfg("data.max_length=6")
    with pytest.raises(SystemExit):
        train(cfg)
    assert "data.max_length" in capsys.readouterr().err


def test_ckpt_init_starts_from_trained_weights(make_cfg, tmp_path):
    first = make_cfg("model=crnn", "model.channels=[8,8,8]", "model.hidden=8")
    train(first)
    ckpt = Path(first.hydra.runtime.output_dir) / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)["state_dict"]["net.head.weight"]
    again = make_cfg("model=crnn", "model.channels=[8,8,8]", "model.hidden=8", f"ckpt_init={ckpt}", "lr=1e-9")
    train(again)
    tuned = torch.load(ckpt, weights_only=True)
    torch.testing.assert_close(tuned["state_dict"]["net.head.weight"], saved, atol=1e-6, rtol=0)
    assert tuned["epoch"] == 0  # a fresh run, not a resume


def test_run_dir_has_config_checkpoints_metrics_and_resumes(make_cfg, tmp_path):
    cfg = make_cfg("epochs=2")
    train(cfg)
    run = Path(cfg.hydra.runtime.output_dir)
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and METRIC_KEYS <= metrics.keys()
    # EpochTimer logs each epoch's time at the step of that epoch's other metrics (the plots'
    # history keys every scalar by epoch through that step).
    assert sorted(read_history(run)["perf/epoch_s"]) == [1, 2]

    system = load_system(run / "checkpoints" / "best.ckpt")
    assert system.net(torch.rand(2, 1, 50, 200)).shape == (2, 5, 19)

    resumed = make_cfg("epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    train(resumed)
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 * 2  # 64 train images, batch 32: the third epoch ran on top of two


def test_same_seed_same_metrics(make_cfg, tmp_path):
    results = []
    for seed in (0, 0, 1):
        cfg = make_cfg(f"seed={seed}", "epochs=1")
        train(cfg)
        results.append((Path(cfg.hydra.runtime.output_dir) / "metrics.json").read_text())
    assert results[0] == results[1]  # byte-identical metrics.json
    assert results[0] != results[2]


def test_no_nan_filling_of_new_tensors_changes_no_result(make_cfg, monkeypatch):
    # train() switches off torch's NaN-filling of new tensors under deterministic=true (a speed-up):
    # the same run with it on must give the same bits, or some op reads memory it never wrote.
    monkeypatch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)  # restored after
    build, seen = pipeline.build, []

    def build_and_see(cfg, fill=False):
        built = build(cfg)
        torch.utils.deterministic.fill_uninitialized_memory |= fill
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory))
        return built

    runs = []
    for fill in (False, True):
        monkeypatch.setattr(pipeline, "build", partial(build_and_see, fill=fill))
        cfg = make_cfg("epochs=2")
        train(cfg)
        assert torch.utils.deterministic.fill_uninitialized_memory  # torch's default again after the run
        run = Path(cfg.hydra.runtime.output_dir)
        runs.append(((run / "metrics.json").read_text(), torch.load(run / "checkpoints" / "last.ckpt")))
    assert seen == [(True, False), (True, True)]
    (metrics, last), (metrics_filled, last_filled) = runs
    assert metrics == metrics_filled
    for name, value in last["state_dict"].items():
        assert torch.equal(value, last_filled["state_dict"][name]), name


@pytest.mark.slow
def test_multirun_three_optimizers_writes_summary(tiny_dir, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        "optimizer=adam,sgd,rmsprop",
        f"data.dir={tiny_dir}",
        "data.synthetic=0",
        "epochs=1",
        "~callbacks.progress_bar",
        f"hydra.sweep.dir={sweep}",
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # Dirs are <job.num>_<run_name> (optimizer third in run_name); the basic sweeper numbers the
    # jobs in the order the overrides list them, and fewer than 10 sort by number.
    assert [(j.split("_", 1)[0], j.split("-")[2]) for j in jobs] == [("0", "adam"), ("1", "sgd"), ("2", "rmsprop")]
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert len(summary) == 4 and summary[0].startswith("job,overrides,val/seq_acc,val/char_acc,val/seq_acc_best")
    assert "optimizer=" in (sweep / "summary.md").read_text()
    for job in jobs:
        assert yaml.safe_load((sweep / job / ".hydra" / "config.yaml").read_text())["epochs"] == 1


needs_real_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real captchas not found at {REAL_DATA}")


def train_on_real_data(make_cfg, *overrides: str) -> dict:
    cfg = make_cfg(f"data.dir={REAL_DATA}", "epochs=8", *overrides)
    train(cfg)
    return json.loads((Path(cfg.hydra.runtime.output_dir) / "metrics.json").read_text())


@pytest.mark.slow
@needs_real_data
def test_short_real_data_run_learns(make_cfg):
    # 870 real images: 87 test, 157 val, 626 train. The report's model first sits on a plateau,
    # reading each position's most frequent character (char_acc ~0.10, loss just under ln 19 =
    # 2.944), for 15-20 epochs with seed 0 (README): its 8 epochs ended there (val/loss_best 2.935,
    # test char_acc 0.083, val/seq_acc_best 0), as did seed 2's. Seed 1 leaves it at epoch 3-4
    # (val char_acc 0.23 at 4, 0.65 at 8; val/seq_acc_best 0.083, test char_acc 0.62; AVX2 EPYC,
    # 2026-12-01), so the bounds hold if another CPU's rounding starts it an epoch or two later.
    metrics = train_on_real_data(make_cfg, "data=captcha_v2", "seed=1")
    assert metrics["val/seq_acc_best"] > 0  # a plateau run reads no captcha whole
    assert metrics["test/char_acc"] > 0.3  # three times the plateau's


@pytest.mark.slow
@needs_real_data
def test_best_recipe_reads_real_captchas_within_a_few_epochs(make_cfg):
    # The recipe of docs/accuracy.md learns fast: 8 of its 60 epochs (~15 s) read 0.94 of fold 0
    # (0.99 after 60); a regression to CTC's all-blank plateau would read 0.
    metrics = train_on_real_data(make_cfg, "experiment=best")
    assert metrics["val/seq_acc"] > 0.85
