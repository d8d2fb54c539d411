"""train.py's job in process (captcha_lab.cli.train.train): fits, run dirs, resumes, seeds, real data."""

import json
import math
import os
import signal
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from captcha_lab.analysis.runs import read_history
from captcha_lab.atomic import replacing
from captcha_lab.cli import train as pipeline
from captcha_lab.cli.train import train
from captcha_lab.training.system import load_system

from ..conftest import REAL_DATA

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
        ["optimizer=adam", "trainer.precision=bf16-mixed"],
        ["optimizer=sgd", "model.head_activation=sigmoid"],
        ["optimizer=rmsprop", "callbacks.interrupt=null"],  # `=null` switches one callback off
        ["activation=gelu", "charset=report36"],
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


class SigtermInLastTestBatch(L.Callback):
    """SIGTERM's flag as Lightning sets it, in the test's last batch, which it finishes."""

    def on_test_batch_end(self, trainer, *args, **kwargs) -> None:
        trainer._signal_connector.received_sigterm = True


def test_sigterm_in_the_last_test_batch_stops_the_run_as_in_any_other(make_cfg_in, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        train(make_cfg_in(run, "~logger", f"+callbacks.stop._target_={__name__}.SigtermInLastTestBatch"))
    assert stopped.value.code == 143 and capsys.readouterr().err.endswith("error: stopped by SIGTERM\n")
    assert not (run / "metrics.json").exists() and (run / "checkpoints" / "best.ckpt").is_file()


def test_sigterm_while_the_results_are_written_leaves_no_temporary_file(make_cfg_in, tmp_path, monkeypatch, capsys):
    # Past fit and test Lightning's handler is gone: SIGTERM killed the process mid-export.
    def export_then_sigterm(ckpt):
        with replacing(Path(ckpt).with_suffix(".onnx")) as tmp:
            tmp.write_bytes(b"half an export")
            os.kill(os.getpid(), signal.SIGTERM)

    def unhandled(signum, frame):  # in place of the default, which would end pytest itself
        raise RuntimeError("SIGTERM reached the handler from before train()")

    monkeypatch.setattr("captcha_lab.inference.export.export_quietly", export_then_sigterm)
    before = signal.signal(signal.SIGTERM, unhandled)
    run = tmp_path / "run"
    try:
        with pytest.raises(SystemExit) as stopped:
            train(make_cfg_in(run, "~logger"))
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the handler before it is back
    finally:
        signal.signal(signal.SIGTERM, before)
    assert stopped.value.code == 143 and capsys.readouterr().err.endswith("error: stopped by SIGTERM\n")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory, make_cfg_in) -> Path:
    """A 3-epoch run stopped by Ctrl-C in epoch 1's validation (Lightning stops cleanly; train exits)."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(SystemExit):
        train(make_cfg_in(run, "epochs=3", f"+callbacks.stop._target_={__name__}.StopInSecondValidation"))
    return run


def test_a_onecycle_run_resumed_for_more_epochs_is_refused_before_a_step(make_cfg_in, tmp_path, capsys):
    # OneCycleLR restores its own length from the checkpoint: the longer run stepped past it with
    # a ValueError in its second epoch.
    first, again = tmp_path / "first", tmp_path / "again"
    train(make_cfg_in(first, "scheduler=onecycle", "~logger"))
    with pytest.raises(SystemExit) as stopped:
        train(make_cfg_in(again, "scheduler=onecycle", "epochs=2", f"ckpt_path={first}/checkpoints/last.ckpt"))
    assert stopped.value.code == 2
    refused = "error: epochs: the resumed OneCycleLR schedule ends after 2 steps, this run takes 4; resume with"
    assert refused in capsys.readouterr().err
    assert not (again / "metrics.json").exists()


def test_resume_of_a_run_stopped_in_its_last_validation_is_refused(interrupted_run, make_cfg, capsys):
    # Its epochs done read one fewer than Lightning counts at the resume, so the check before fit
    # lets it through; fit then trains nothing and the check after it refuses.
    ckpt = interrupted_run / "checkpoints" / "interrupted.ckpt"
    with pytest.raises(SystemExit) as stopped:
        train(make_cfg("epochs=2", f"ckpt_path={ckpt}"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: epochs=2: {ckpt} has trained as many; nothing left to train\n")


def test_resume_from_an_interrupted_validation_logs_no_empty_train_epoch(interrupted_run, make_cfg_in):
    train(make_cfg_in(interrupted_run, "epochs=3", f"ckpt_path={interrupted_run / 'checkpoints' / 'interrupted.ckpt'}"))
    history = read_history(interrupted_run)
    # Epoch 1's train metrics would be NaN/0 from empty accumulators: none are logged for it.
    for tag in ("train/loss", "train/char_acc", "train/seq_acc"):
        assert len(history[tag]) == 2 and all(math.isfinite(v) for v in history[tag].values()), tag


def test_tilde_logger_logs_nothing(one_epoch_run):
    # One real epoch (fast_dev_run would swap any logger for a dummy) with `~logger`: no Lightning
    # default logger in its place (lightning_logs/), no event files, no plots.
    assert sorted(p.name for p in one_epoch_run.iterdir()) == ["checkpoints", "metrics.json", "timing.json"]


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
    assert "labels of 5 to 6 symbols, but model=report_cnn reads one length" in capsys.readouterr().err


def test_a_crnn_with_fewer_frames_than_label_symbols_is_refused(make_cfg, capsys):
    with pytest.raises(SystemExit):
        train(make_cfg("model=crnn", "data.width=32"))  # 32 px / 2^3: 4 frames for labels of 5
    err = capsys.readouterr().err
    assert "error: data.width: 32 px wide images give model=crnn 4 frames, fewer than labels of 5 symbols" in err


def test_ckpt_init_starts_from_trained_weights(make_cfg, one_epoch_run):
    saved = torch.load(one_epoch_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    again = make_cfg(f"ckpt_init={one_epoch_run / 'checkpoints' / 'last.ckpt'}", "lr=1e-9", "~logger")
    train(again)
    tuned = torch.load(Path(again.hydra.runtime.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    heads = [k for k in saved if k.startswith("net.heads.") and k.endswith("weight")]
    assert heads
    for name in heads:
        torch.testing.assert_close(tuned["state_dict"][name], saved[name], atol=1e-6, rtol=0)
    assert tuned["epoch"] == 0  # a fresh run, not a resume


def test_ckpt_init_refuses_another_alphabet_of_the_same_size(make_cfg, one_epoch_run, capsys):
    symbols = make_cfg().charset.symbols
    again = make_cfg(f"ckpt_init={one_epoch_run / 'checkpoints' / 'last.ckpt'}", f"charset.symbols={symbols[::-1]}")
    with pytest.raises(SystemExit):
        train(again)
    assert f"trained on charset {symbols!r}, but this run uses {symbols[::-1]!r}" in capsys.readouterr().err


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory, make_cfg_in) -> dict:
    """Three 2-epoch runs: seed 0, seed 0 again with torch's NaN-filling of new tensors on (train()
    switches it off under deterministic=true, a speed-up), and seed 1; plus what each run saw."""
    root, seen, fill_after = tmp_path_factory.mktemp("seeded"), [], []
    build = pipeline.build

    def build_and_see(cfg, fill=False):
        built = build(cfg)
        torch.utils.deterministic.fill_uninitialized_memory |= fill
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory))
        return built

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.utils.deterministic, "fill_uninitialized_memory", True)  # restored after
        for name, fill in (("seed0", False), ("seed0_filled", True)):
            patch.setattr(pipeline, "build", partial(build_and_see, fill=fill))
            train(make_cfg_in(root / name, "epochs=2"))
            fill_after.append(torch.utils.deterministic.fill_uninitialized_memory)
    train(make_cfg_in(root / "seed1", "epochs=2", "seed=1"))
    return {"root": root, "seen": seen, "fill_after": fill_after}


@pytest.mark.slow  # as the two below: seeded_runs trains three 2-epoch runs
def test_run_dir_has_config_checkpoints_metrics_and_resumes(seeded_runs, make_cfg):
    run = seeded_runs["root"] / "seed0"
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and METRIC_KEYS <= metrics.keys()
    # EpochTimer logs each epoch's time at the step of that epoch's other metrics (the plots'
    # history keys every scalar by epoch through that step).
    assert sorted(read_history(run)["perf/epoch_s"]) == [1, 2]
    logged = yaml.safe_load((run / "hparams.yaml").read_text())  # what Lightning recorded at the start
    assert logged["net_spec"]["kind"] == "report_cnn" and logged["optimizer_settings"]["class"] == "Adam"

    system = load_system(run / "checkpoints" / "best.ckpt")
    assert system.net(torch.rand(2, 1, 50, 200)).shape == (2, 5, 19)

    resumed = make_cfg("epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "~logger")
    train(resumed)
    again = Path(resumed.hydra.runtime.output_dir)
    assert json.loads((again / "metrics.json").read_text())["epochs"] == 3
    last = torch.load(again / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 * 2  # 58 train images, batch 32: the third epoch ran on top of two


@pytest.mark.slow
def test_same_seed_same_metrics(seeded_runs):
    # seed0_filled is seed0 run again, with torch's NaN-filling on (which changes nothing: below).
    seed0, again, seed1 = (seeded_runs["root"] / n / "metrics.json" for n in ("seed0", "seed0_filled", "seed1"))
    assert seed0.read_text() == again.read_text()  # byte-identical metrics.json
    assert seed0.read_text() != seed1.read_text()


@pytest.mark.slow
def test_no_nan_filling_of_new_tensors_changes_no_result(seeded_runs):
    # The same run with torch's filling on must give the same bits, or some op reads memory it never wrote.
    assert seeded_runs["seen"] == [(True, False), (True, True)]
    assert seeded_runs["fill_after"] == [True, True]  # torch's default again after each run
    runs = [seeded_runs["root"] / name for name in ("seed0", "seed0_filled")]
    (metrics, last), (metrics_filled, last_filled) = [
        ((run / "metrics.json").read_text(), torch.load(run / "checkpoints" / "last.ckpt")) for run in runs
    ]
    assert metrics == metrics_filled
    for name, value in last["state_dict"].items():
        assert torch.equal(value, last_filled["state_dict"][name]), name


needs_real_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real captchas not found at {REAL_DATA}")


def train_on_real_data(make_cfg, *overrides: str) -> dict:
    cfg = make_cfg(f"data.dir={REAL_DATA}", "epochs=8", "~logger", *overrides)
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
    # The recipe learns fast: its 20 epochs pass 0.94 of fold 0 by the 6th (docs/benchmarks.md),
    # so 8 epochs on their own schedule read far more than 0.85; CTC's all-blank plateau reads 0.
    metrics = train_on_real_data(make_cfg, "experiment=best")
    assert metrics["val/seq_acc"] > 0.85


def test_diverging_run_scores_finite(make_cfg, tmp_path):
    # A sweep's optimizer (optuna) needs a finite score. A diverged net still reads some class
    # (argmax of NaN logits), so its val/seq_acc is 0, never NaN; the best is NaN when no
    # validation ran during fit, as here.
    cfg = make_cfg("optimizer=sgd", "lr=1e8", "+trainer.limit_val_batches=0")
    assert train(cfg) == 0.0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert math.isnan(metrics["val/seq_acc_best"])  # what train() would return without finite_score
