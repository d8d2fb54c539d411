"""Reading finished runs and sweeps back from disk: a run's per-epoch history from its TensorBoard
event files, and a multirun's job dirs, so that any finished run can be tabulated or plotted
again without re-training."""

import os
import re
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from captcha_lab.errors import ERROR_FILE

History = dict[str, dict[int, float]]  # tag -> {epoch: value}


def read_history(run_dir: str | Path) -> History:
    """Every scalar of a run's event files keyed by epoch (Lightning logs `epoch` at each step);
    a resumed run's repeated epochs keep their latest value."""
    history: History = {}
    for events in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if "epoch" not in tags:
            continue
        epoch_at = {e.step: int(e.value) for e in acc.Scalars("epoch")}
        for tag in tags:
            for e in acc.Scalars(tag):
                if e.step in epoch_at:
                    history.setdefault(tag, {})[epoch_at[e.step] + 1] = e.value  # epochs from 1
    return history


# What a job writes into its dir (Hydra's .hydra/ unless hydra.output_subdir=null; ours).
JOB_MARKERS = {".hydra", "checkpoints", "metrics.json", "eval.json", ERROR_FILE}


def job_dirs(sweep_dir: Path) -> list[Path]:
    """A multirun's job dirs, at any depth (a `hydra.sweep.subdir` may contain `/`), in job order."""
    jobs = []
    for root, dirs, files in os.walk(sweep_dir):
        if root != str(sweep_dir) and JOB_MARKERS.intersection(dirs + files):
            jobs.append(Path(root))
            dirs.clear()  # a job's own folders hold no jobs
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(jobs, key=lambda job: job_order(job_name(sweep_dir, job)))


def job_name(sweep_dir: Path, job: Path) -> str:
    return job.relative_to(sweep_dir).as_posix()


def job_order(name: str) -> list[tuple[int, int, str]]:
    """Numbers as numbers, wherever Hydra's subdir puts the job's: 2_a before 10_a, 2/adam before 10/adam."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[/_]", name)]
