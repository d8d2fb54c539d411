"""A multirun's summary table: one row per job, best first."""

import csv
import json
import math
import os
import re
import statistics
from pathlib import Path

import yaml

from captcha_lab.atomic import write_text, writing
from captcha_lab.errors import ERROR_FILE

COLUMNS = [
    "job",
    "overrides",
    "val/seq_acc",
    "val/char_acc",
    "val/seq_acc_best",
    "val/loss_best",
    "test/seq_acc",
    "test/char_acc",
    "test/loss",
    "epochs",
    "wall_s",
]


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


def collect(sweep_dir: Path) -> list[dict]:
    rows = []
    for job in job_dirs(sweep_dir):
        metrics_file = job / "metrics.json"
        if not metrics_file.is_file():
            continue
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        timing_file = job / "timing.json"
        timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        row = {"job": job_name(sweep_dir, job), "overrides": " ".join(overrides or [])}
        rows.append({**row, **json.loads(metrics_file.read_text()), **timing})
    return sorted(rows, key=lambda r: best_first(r.get("val/seq_acc_best", math.nan)))


def best_first(score: float) -> float:
    """A sort key: the highest score first, NaN (a job that never validated) last."""
    return -score if math.isfinite(score) else math.inf


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


REPEATS = re.compile(r"(^|\s)(data\.fold|seed)=\S+")  # overrides that only repeat a recipe


# The last epoch's val scores come first: the honest estimate, as no epoch was picked by them.
AGGREGATED = ("val/seq_acc", "val/char_acc", "val/seq_acc_best")


def aggregate(rows: list[dict], keys: tuple[str, ...] = AGGREGATED) -> list[dict]:
    """Per recipe (a job's overrides without data.fold= and seed=): the number of jobs and, per
    key, (mean, sample std): the k-fold / multi-seed estimate. Best mean of the first key first."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(REPEATS.sub("", row["overrides"]).strip(), []).append(row)
    out = []
    for recipe, members in groups.items():
        group = {"recipe": recipe or "(defaults)", "n": len(members)}
        for key in keys:
            values = [m[key] for m in members if key in m]
            if values:
                group[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        out.append(group)

    def rank(group: dict) -> float:
        return best_first(group.get(keys[0], (math.nan,))[0])

    return sorted(out, key=rank)


def write_summary(sweep_dir: str | Path) -> list[dict]:
    """Write summary.csv and summary.md at the sweep root; jobs without metrics.json are left out."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    with writing(sweep_dir / "summary.csv") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    lines += _recipe_table(aggregate(rows))
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


def _recipe_table(groups: list[dict]) -> list[str]:
    """Mean ± std per recipe, where some recipe ran over several folds or seeds."""
    if all(g["n"] == 1 for g in groups):
        return []
    lines = [
        "",
        "Per recipe, mean ± std over its folds/seeds (val/seq_acc: the last epoch's, the honest estimate;"
        " val/seq_acc_best: the best epoch's, picked on val, so optimistic):",
        "",
        "| recipe | n | " + " | ".join(AGGREGATED) + " |",
        "|---|---|" + "---|" * len(AGGREGATED),
    ]
    for g in groups:
        cells = [f"{g[k][0]:.4f} ± {g[k][1]:.4f}" if k in g else "" for k in AGGREGATED]
        lines.append(f"| {g['recipe']} | {g['n']} | " + " | ".join(cells) + " |")
    return lines
