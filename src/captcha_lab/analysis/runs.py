"""Reading finished runs and sweeps back from disk: a run's per-epoch history from its TensorBoard
event files, and a multirun's job dirs, so that any finished run can be tabulated or plotted
again without re-training; the mean history of a recipe's seeds or folds, written back for
TensorBoard."""

import os
import re
import shutil
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from captcha_lab.errors import ERROR_FILE

Points = dict[int, float]  # epoch -> value
History = dict[str, Points]  # tag -> {epoch: value}


def read_history(run_dir: str | Path) -> History:
    """Every scalar of a run's event files keyed by epoch (Lightning logs `epoch` at each step);
    a resumed run's repeated epochs keep their latest value."""
    runs = []
    for events in Path(run_dir).glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "epoch" in acc.Tags()["scalars"]:
            runs.append(acc)
    # In the order the files were started: their names hold the start only to the second, and
    # compare by host and pid within it (a run resumed within the same second).
    runs.sort(key=lambda acc: (acc.FirstEventTimestamp(), acc.path))
    history: History = {}
    for acc in runs:
        epoch_at = {e.step: int(e.value) for e in acc.Scalars("epoch")}
        for tag in acc.Tags()["scalars"]:
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


def failed_jobs(sweep_dir: Path) -> list[Path]:
    """The job dirs whose job stopped on an error (their error.txt), in job order."""
    return [job for job in job_dirs(sweep_dir) if (job / ERROR_FILE).is_file()]


def job_name(sweep_dir: Path, job: Path) -> str:
    return job.relative_to(sweep_dir).as_posix()


def job_order(name: str) -> list[tuple[int, int, str]]:
    """Numbers as numbers, wherever Hydra's subdir puts the job's: 2_a before 10_a, 2/adam before 10/adam."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[/_]", name)]


def histories_by_label(sweep_dir: Path, labels: dict[str, str]) -> dict[str, list[History]]:
    """Label -> the histories of the jobs it labels (job dir name -> label; the name by default)."""
    runs: dict[str, list[History]] = {}
    for job in job_dirs(sweep_dir):
        if any(job.glob("events.out.tfevents.*")):
            name = job_name(sweep_dir, job)
            runs.setdefault(labels.get(name, name), []).append(read_history(job))
    return runs


def mean_and_range(curves: list[Points]) -> tuple[Points, Points, Points]:
    """Per epoch, the mean, lowest and highest value of the curves that reached it (a stopped or
    still running job has fewer epochs)."""
    at: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve.items():
            at.setdefault(epoch, []).append(value)
    at = dict(sorted(at.items()))
    mean = {e: sum(v) / len(v) for e, v in at.items()}
    return mean, {e: min(v) for e, v in at.items()}, {e: max(v) for e, v in at.items()}


MEAN_RUNS = "mean_runs"  # a sweep's folder of per-recipe mean runs: `tensorboard --logdir` it


def write_mean_runs(sweep_dir: Path, runs: dict[str, list[History]]) -> list[Path]:
    """Per label with several jobs, the mean of their train/ and val/ curves as a TensorBoard run
    in sweep_dir/mean_runs/<label>. Its step is the epoch (the jobs' own step is the batch)."""
    shutil.rmtree(sweep_dir / MEAN_RUNS, ignore_errors=True)  # no stale recipes of an earlier summary
    written = []
    for label, histories in runs.items():
        if len(histories) > 1:
            tags = sorted({t for h in histories for t in h if t.startswith(("train/", "val/"))})
            mean = {tag: mean_and_range([h.get(tag, {}) for h in histories])[0] for tag in tags}
            written.append(write_history(sweep_dir / MEAN_RUNS / re.sub(r"[^\w.=,+-]+", "_", label), mean))
    return written


def write_history(run_dir: Path, history: History) -> Path:
    """A history as one event file that read_history reads back, one step per epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(run_dir))
    for epoch in sorted(set().union(*history.values())):
        points = {"epoch": epoch - 1, **{t: p[epoch] for t, p in history.items() if epoch in p}}  # epochs from 0
        values = [Summary.Value(tag=t, simple_value=v) for t, v in points.items()]
        writer.add_event(Event(wall_time=time.time(), step=epoch, summary=Summary(value=values)))
    writer.close()
    return run_dir
