"""Real training subprocesses: kill -9 then resume, Ctrl-C / SIGTERM, and 2-process DDP on CPU."""

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from captcha_lab.checkpoint import read_checkpoint

from .conftest import ROOT

STEPS_PER_EPOCH = 2  # the tiny set's 58 training images in batches of 32


def start(tmp_path: Path, tiny_dir: Path, run: Path, *overrides: str) -> subprocess.Popen:
    args = [f"data.dir={tiny_dir}", "data.synthetic=0", "~callbacks.progress_bar", f"hydra.run.dir={run}", *overrides]
    log = open(tmp_path / f"{run.name}.log", "w")  # a file, not a pipe: a full pipe would block the child
    # A shell's background job (`make test &`, some CI runners) starts with SIGINT ignored, and
    # Python then installs no Ctrl-C handler: give the child the default back.
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def output(tmp_path: Path, run: Path) -> str:
    return (tmp_path / f"{run.name}.log").read_text()


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended (rc {proc.returncode}) before {path} appeared"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def digest(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_finishes_every_epoch(tmp_path, tiny_dir):
    first, second = tmp_path / "first", tmp_path / "second"
    proc = start(tmp_path, tiny_dir, first, "epochs=6")
    last = first / "checkpoints" / "last.ckpt"
    wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)  # no handler can run: only what is already on disk survives
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(last)["epoch"]  # Lightning's save is atomic: a whole file or none
    assert killed_at < 5 and not (first / "metrics.json").exists()
    before = digest(first)

    resumed = start(tmp_path, tiny_dir, second, "epochs=6", f"ckpt_path={last}")
    assert resumed.wait(timeout=600) == 0, output(tmp_path, second)[-3000:]
    assert json.loads((second / "metrics.json").read_text())["epochs"] == 6
    assert torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6 * STEPS_PER_EPOCH
    assert digest(first) == before  # resuming never writes into the run it resumes from


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 1), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_save_a_checkpoint_and_exit_cleanly(tmp_path, tiny_dir, sig, code):
    run = tmp_path / "run"
    proc = start(tmp_path, tiny_dir, run, "epochs=200")
    wait_for(run / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code
    log = output(tmp_path, run)
    assert "Traceback" not in log and "weights_only" not in log, log[-3000:]  # no noise from Lightning
    interrupted = run / "checkpoints" / "interrupted.ckpt"
    assert f"interrupted: saved {interrupted}" in log
    assert read_checkpoint(interrupted)["global_step"] >= STEPS_PER_EPOCH
    if sig == signal.SIGTERM:
        assert "error: stopped by SIGTERM" in log
        return
    # Resuming from the interrupted step (mid-epoch, most likely) finishes the run.
    epochs = read_checkpoint(interrupted)["epoch"] + 2
    again = tmp_path / "again"
    resumed = start(tmp_path, tiny_dir, again, f"epochs={epochs}", f"ckpt_path={interrupted}")
    assert resumed.wait(timeout=600) == 0, output(tmp_path, again)[-3000:]
    assert json.loads((again / "metrics.json").read_text())["epochs"] == epochs


@pytest.mark.slow
def test_ddp_cpu_two_processes_train_and_write_metrics_once(tmp_path, tiny_dir):
    run = tmp_path / "ddp"
    proc = start(tmp_path, tiny_dir, run, "trainer=ddp_cpu", "epochs=2")
    assert proc.wait(timeout=600) == 0, output(tmp_path, run)[-3000:]
    assert "sync_dist" not in output(tmp_path, run)  # Lightning's warning per unsynced epoch-level key
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and math.isfinite(metrics["test/loss"]) and metrics["test/loss"] < 2 * math.log(19)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("test/char_acc", "test/seq_acc", "val/seq_acc_best"))
    # Each of the 2 ranks trains on half of the 58 images: one step per epoch instead of two.
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    # Rank 1 ran in the same run dir, logged to its own file, and wrote neither config nor metrics.
    assert (run / "train_ddp_process_1.log").is_file() and list(run.glob("**/metrics.json")) == [run / "metrics.json"]
    assert (
        "run dir:" in (run / "train.log").read_text()
        and "run dir:" not in (run / "train_ddp_process_1.log").read_text()
    )


@pytest.mark.slow
def test_resuming_a_run_stopped_by_max_time_names_max_time(tmp_path, tiny_dir):
    budget = ["epochs=200", "+trainer.max_time=00:00:00:04"]  # stops after a few of 200 epochs
    first = start(tmp_path, tiny_dir, tmp_path / "first", *budget)
    assert first.wait(timeout=300) == 0, output(tmp_path, tmp_path / "first")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    again = start(tmp_path, tiny_dir, tmp_path / "again", *budget, f"ckpt_path={last}")
    assert again.wait(timeout=300) == 2
    error = output(tmp_path, tmp_path / "again").strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: trainer.max_time: {last} has trained for \d+ s, all of it; raise it, or null, to go on", error
    )
