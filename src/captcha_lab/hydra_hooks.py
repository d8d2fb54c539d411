"""Hydra callbacks of train.py (conf/train.yaml, hydra.callbacks): they run around the jobs."""

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from captcha_lab.errors import ERROR_FILE
from captcha_lab.plots import summarize_sweep

log = logging.getLogger("captcha_lab")


def holds_a_run(run_dir: Path) -> str | None:
    """What in `run_dir` shows that a training ran there (a checkpoint, metrics.json), or None."""
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    if checkpoints:
        return str(checkpoints[0].relative_to(run_dir))
    return "metrics.json" if (run_dir / "metrics.json").is_file() else None


class KeepEarlierRuns(Callback):
    """Refuse a run or sweep dir that already holds one (e.g. a reused `hydra.run.dir=`), before
    Hydra rewrites its .hydra/ config, which eval.py reads back, and before its checkpoints are
    overwritten. Resuming in place (`ckpt_path=` inside that dir, as a requeued SLURM job does)
    is allowed."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(config.hydra.run.dir).resolve()
        ckpt = config.get("ckpt_path")
        resuming_here = ckpt is not None and run_dir in Path(ckpt).resolve().parents
        found = holds_a_run(run_dir)
        if found and not resuming_here and not is_other_rank():
            refuse(f"hydra.run.dir: {run_dir} already holds a run ({found}); choose another, or resume (ckpt_path=)")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if (sweep_dir / "multirun.yaml").is_file():
            refuse(f"hydra.sweep.dir: {sweep_dir} already holds a sweep (multirun.yaml); choose another dir")


def is_other_rank() -> bool:
    # DDP ranks > 0 (launched by Lightning, torchrun or srun) start into rank 0's dir by design.
    return any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class SweepSummary(Callback):
    """After a multirun, tabulate its jobs at the sweep root; then, if some stopped on a user
    error (errors.user_errors wrote their error.txt and let the others run), name them and exit 2."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = summarize_sweep(sweep_dir)
        log.info("sweep summary (%d jobs): %s", len(rows), sweep_dir / "summary.md")
        failed = sorted(sweep_dir.glob(f"*/{ERROR_FILE}"))
        if failed:
            first = failed[0].read_text().strip()
            refuse(f"{len(failed)} sweep job(s) failed, the first {failed[0].parent.name}: {first}")
