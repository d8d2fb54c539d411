"""Hydra callbacks of the commands (hydra.callbacks in their configs): they run around
the jobs, before Hydra writes a run dir's .hydra/ and after a sweep's last job."""

import logging
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from captcha_lab.analysis.runs import failed_jobs, job_dirs, job_name
from captcha_lab.analysis.sweep import summarize_sweep
from captcha_lab.cli.exits import user_errors
from captcha_lab.errors import ERROR_FILE, ConfigError

log = logging.getLogger("captcha_lab")


def holds_a_run(run_dir: Path) -> str | None:
    """What in `run_dir` shows that a job ran there (a checkpoint, metrics.json, eval.json,
    error.txt), or None."""
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    if checkpoints:
        return str(checkpoints[0].relative_to(run_dir))
    return next((name for name in ("metrics.json", "eval.json", ERROR_FILE) if (run_dir / name).is_file()), None)


def holds_a_sweep(sweep_dir: Path) -> str | None:
    """What in `sweep_dir` shows that a sweep ran there (multirun.yaml beside a job dir, or a job
    dir holding a run at any depth: optuna's sweeper writes no multirun.yaml), or None. A
    multirun.yaml alone is a sweep that stopped before its first job (an unknown choice)."""
    if (sweep_dir / "multirun.yaml").is_file() and job_dirs(sweep_dir):
        return "multirun.yaml"
    held = (f"{job_name(sweep_dir, job)}/{what}" for job in job_dirs(sweep_dir) if (what := holds_a_run(job)))
    return next(held, None)


def resolved_dir(config: DictConfig, key: str) -> Path:
    # A dir named after `${hydra:...}` choices (train.yaml's run_name) resolves only once
    # HydraConfig is set, which Hydra does after on_run_start, first thing in run_job.
    HydraConfig.instance().set_config(config)
    value = str(OmegaConf.select(config, key)).strip()
    if not value:  # else the current dir, whatever it holds
        refuse(f"{key} is empty; name a new dir")
    return Path(value)


def check_dir(run_dir: Path, key: str) -> None:
    """A dir Hydra could not create (a file, or under one: a traceback from mkdir), or one inside
    an earlier run or eval (its checkpoints/, say), whose outputs would then hold this run's. A
    folder above counts as one only with its .hydra/config.yaml: a stray checkpoint is no run."""
    for folder in (run_dir, *run_dir.parents):
        if folder.exists() and not folder.is_dir():
            refuse(f"{key}: {folder} is a file, not a folder; choose another dir")
    for folder in run_dir.parents:  # a run's or eval's dir: its .hydra/ config and what it wrote
        if (folder / ".hydra" / "config.yaml").is_file() and (found := holds_a_run(folder)):
            refuse(f"{key}: {run_dir} is inside the run in {folder} ({found}); choose another dir")


def refuse(message: str) -> None:
    with user_errors():  # one line on stderr, exit status 2
        raise ConfigError(message)


class KeepEarlierRuns(Callback):
    """Refuse a run or sweep dir that already holds one (e.g. a reused `hydra.run.dir=`), before
    Hydra rewrites its .hydra/ config, which eval.py reads back, and before its checkpoints are
    overwritten. Resuming in place (`ckpt_path=` inside that dir, as a requeued SLURM job would)
    is allowed unless `resume_in_place=False` (eval.py: its ckpt_path is what it scores, and its
    outputs in a training run's dir would replace that run's config). Every DDP rank checks: all
    of them start before the first checkpoint exists."""

    def __init__(self, resume_in_place: bool = True):
        self.resume_in_place = resume_in_place

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = resolved_dir(config, "hydra.run.dir").resolve()
        check_dir(run_dir, "hydra.run.dir")
        for key in ("data.dir", "data.test_dir"):  # its loss.png would then be read as a captcha
            folder = OmegaConf.select(config, key, default=None)
            if folder and Path(folder).resolve() == run_dir:
                refuse(f"hydra.run.dir: {run_dir} is {key}: the run's figures would become its images; choose another")
        ckpt = config.get("ckpt_path") if self.resume_in_place else None
        # Its own run's checkpoint (<run>/checkpoints/x.ckpt), not any folder above one: a sweep's
        # root, or a folder of runs, would take a run's outputs beside its own.
        if ckpt is not None and Path(ckpt).resolve().parent.parent == run_dir:
            keep_first_config(config, run_dir)
            return
        if found := holds_a_run(run_dir):
            resume = f", or resume it with a checkpoint of its own ({run_dir}/checkpoints/...)"
            resume = resume if self.resume_in_place else ""
            refuse(f"hydra.run.dir: {run_dir} already holds a run ({found}); choose another{resume}")
        if found := holds_a_sweep(run_dir):  # e.g. a sweep root, or a folder of runs
            refuse(f"hydra.run.dir: {run_dir} already holds a sweep ({found}); choose another dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir")
        # Unique per job: its number or id, or its overrides; ${run_name} alone is not (seed=0,1).
        if not re.search(r"hydra[.:]job\.(num|id|override_dirname)", str(subdir)):
            unique = "${hydra.job.num} (nor its id or override_dirname)"
            refuse(f"hydra.sweep.subdir: {subdir} names no {unique}; jobs could share a dir and overwrite it")
        sweep_dir = resolved_dir(config, "hydra.sweep.dir")
        check_dir(sweep_dir.resolve(), "hydra.sweep.dir")
        if found := holds_a_run(sweep_dir):
            refuse(f"hydra.sweep.dir: {sweep_dir} already holds a run ({found}); choose another dir")
        if found := holds_a_sweep(sweep_dir):
            refuse(f"hydra.sweep.dir: {sweep_dir} already holds a sweep ({found}); choose another dir")


def keep_first_config(config: DictConfig, run_dir: Path) -> None:
    """A resume in place writes its .hydra/ files into .hydra/resume-K/: the run's own, which
    eval.py reads, would otherwise be rewritten before the resume's checks can refuse it (another
    split, a misspelt data.dir). DDP ranks above 0 write none (output_subdir null)."""
    subdir = config.hydra.output_subdir
    if subdir is None:
        return
    k = 1 + len(list((run_dir / subdir).glob("resume-*")))
    with read_write(config.hydra):
        config.hydra.output_subdir = f"{subdir}/resume-{k}"


class SweepSummary(Callback):
    """After a multirun, tabulate its jobs at the sweep root."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = summarize_sweep(sweep_dir)
        log.info("sweep summary (%d jobs): %s", len(rows), sweep_dir / "summary.md")


class FailedJobs(Callback):
    """After a multirun whose jobs stopped on a user error (exits.user_errors wrote their
    error.txt and let the others run): name them and exit 2. Listed before SweepSummary, so that
    Hydra, which calls the end hooks in reverse order, writes the summary first."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = failed_jobs(sweep_dir)
        if failed:
            names = ", ".join(job_name(sweep_dir, job) for job in failed)
            first = (failed[0] / ERROR_FILE).read_text().strip()
            refuse(f"{len(failed)} sweep job(s) failed ({names}); the first: {first}")
