"""How real train.py processes end (user error, kill -9, Ctrl-C, SIGTERM; resumed), DDP on CPU, and max_time."""

import json
import math
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from captcha_lab.cli.train import train
from captcha_lab.models.checkpoint import read_checkpoint

from .conftest import start

STEPS_PER_EPOCH = 2  # the tiny set's 58 training images in batches of 32
TINY_RUN = ["data.dir={tiny}", "data.synthetic=0", "~callbacks.progress_bar"]

# name: (what the ids of the tests that need it hold, its train.py arguments besides the run dir,
# the signal it is sent once its first last.ckpt is saved)
PROCESSES = {
    "user_error": ("test_cli_user_error", ["lr=-1"], None),  # Hydra's and Python's default logging and warnings
    "kill_9": ("test_kill_9", [*TINY_RUN, "epochs=6"], signal.SIGKILL),  # no handler runs: only what is on disk
    "sigint": ("[sigint-", [*TINY_RUN, "epochs=200"], signal.SIGINT),
    "sigterm": ("[sigterm-", [*TINY_RUN, "epochs=200"], signal.SIGTERM),
    "ddp": ("test_ddp", [*TINY_RUN, "trainer=ddp_cpu", "epochs=2"], None),
}


def digest(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def ended(request, tmp_path_factory, tiny_dir):
    """The processes the selected tests need, started together (their imports, ~5 s of one core
    each, run side by side); each is sent its signal as soon as its first last.ckpt is on disk.
    Then name -> once it has ended, (exit code, run dir, its stdout and stderr, its stderr)."""
    root, procs = tmp_path_factory.mktemp("ended"), {}
    for name, (needed_by, args, _) in PROCESSES.items():
        if any(needed_by in item.name for item in request.session.items):
            args = [a.format(tiny=tiny_dir) for a in args]
            procs[name] = start("train.py", f"hydra.run.dir={root / name}", *args, out=root / f"{name}.out")

    def wait(name: str) -> tuple[int, Path, str, str]:
        code = procs[name].wait(timeout=600)
        stdout, stderr = ((root / f"{name}.{kind}").read_text() for kind in ("out", "err"))
        return code, root / name, stdout + stderr, stderr

    try:
        waiting, deadline = {n for n in procs if PROCESSES[n][2]}, time.monotonic() + 300
        while waiting:
            for name in sorted(waiting):
                if (root / name / "checkpoints" / "last.ckpt").exists():
                    procs[name].send_signal(PROCESSES[name][2])
                    waiting.discard(name)
                else:
                    assert procs[name].poll() is None, f"{name} ended (rc {procs[name].returncode}) before a last.ckpt"
            assert time.monotonic() < deadline, f"no last.ckpt from {waiting} after 300 s"
            time.sleep(0.05)
        yield wait
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_cli_user_error_is_one_line(ended):
    code, _, _, stderr = ended("user_error")
    assert code == 2
    assert stderr.strip() == "error: lr must be a positive number, got -1.0"


@pytest.mark.slow
def test_resuming_a_run_stopped_by_max_time_names_max_time(make_cfg, capsys):
    # In process (Lightning's Timer stops it, not a signal), while the processes above end.
    budget = ["epochs=200", "+trainer.max_time=00:00:00:01", "~logger"]  # a second: a few of 200 epochs
    first = make_cfg(*budget)
    train(first)
    last = Path(first.hydra.runtime.output_dir) / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        train(make_cfg(*budget, f"ckpt_path={last}"))
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: trainer.max_time: {last} has trained for \d+ s, all of it; raise it, or null, to go on", error
    )


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_finishes_every_epoch(ended, make_cfg):
    code, first, _, _ = ended("kill_9")
    assert code == -signal.SIGKILL
    last = first / "checkpoints" / "last.ckpt"
    killed_at = read_checkpoint(last)["epoch"]  # Lightning's save is atomic: a whole file or none
    assert killed_at < 5 and not (first / "metrics.json").exists()
    before = digest(first)

    resumed = make_cfg("epochs=6", f"ckpt_path={last}")
    train(resumed)
    second = Path(resumed.hydra.runtime.output_dir)
    assert json.loads((second / "metrics.json").read_text())["epochs"] == 6
    assert torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6 * STEPS_PER_EPOCH
    assert digest(first) == before  # resuming never writes into the run it resumes from


@pytest.mark.slow
@pytest.mark.parametrize("name,code", [("sigint", 1), ("sigterm", 143)])
def test_ctrl_c_and_sigterm_save_a_checkpoint_and_exit_cleanly(ended, make_cfg, name, code):
    got_code, run, log, _ = ended(name)
    assert got_code == code, log[-3000:]
    assert "Traceback" not in log and "weights_only" not in log, log[-3000:]  # no noise from Lightning
    interrupted = run / "checkpoints" / "interrupted.ckpt"
    assert f"interrupted: saved {interrupted}" in log
    assert read_checkpoint(interrupted)["global_step"] >= STEPS_PER_EPOCH
    if name == "sigterm":
        assert "error: stopped by SIGTERM" in log
        return
    # Resuming from the interrupted step (mid-epoch, most likely) finishes the run.
    epochs = read_checkpoint(interrupted)["epoch"] + 2
    again = make_cfg(f"epochs={epochs}", f"ckpt_path={interrupted}", "~logger")
    train(again)
    assert json.loads((Path(again.hydra.runtime.output_dir) / "metrics.json").read_text())["epochs"] == epochs


@pytest.mark.slow
def test_ddp_cpu_two_processes_train_and_write_metrics_once(ended):
    code, run, log, _ = ended("ddp")
    assert code == 0, log[-3000:]
    assert "sync_dist" not in log  # Lightning's warning per unsynced epoch-level key
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
