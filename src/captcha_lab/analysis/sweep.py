"""A multirun's tables (summary.csv/.md: one row per job, best first, and mean ± std per recipe
over folds or seeds; curves.md) and its overlay plots, written at the sweep root."""

import csv
import json
import math
import re
import statistics
from pathlib import Path

import yaml

from captcha_lab.analysis.plots import plot_run, plot_sweep
from captcha_lab.analysis.runs import job_dirs, job_name, job_order, read_history
from captcha_lab.atomic import write_text, writing
from captcha_lab.errors import DataError

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


def job_labels(overrides: dict[str, str]) -> dict[str, str]:
    """Job dir name -> the overrides that set it apart from the sweep's other jobs."""
    tokens = {job: o.split() for job, o in overrides.items()}
    common = set.intersection(*(set(t) for t in tokens.values())) if len(tokens) > 1 else set()
    return {job: " ".join(t for t in ts if t not in common) or job for job, ts in tokens.items()}


CURVE_COLUMNS = ["val/char_acc", "val/seq_acc", "val/loss", "train/loss"]


def write_curves(sweep_dir: Path, labels: dict[str, str]) -> None:
    """curves.md: each job's last-epoch and best value of the logged curves. Short runs whose
    val/seq_acc is still 0 pick their first epoch as `best.ckpt`; the curves show more."""
    lines = ["| job | epochs | " + " | ".join(f"{c} last | best" for c in CURVE_COLUMNS) + " |"]
    lines.append("|" + "---|" * (2 + 2 * len(CURVE_COLUMNS)))
    for job in sorted(labels, key=job_order):
        h, label = read_history(sweep_dir / job), labels[job]
        cells = []
        for c in CURVE_COLUMNS:
            points = h.get(c) or {0: float("nan")}
            best = min(points.values()) if c.endswith("loss") else max(points.values())
            cells += [f"{points[max(points)]:.4f}", f"{best:.4f}"]
        lines.append(f"| {label} | {max(h.get('val/loss', {0: 0}))} | " + " | ".join(cells) + " |")
    write_text(sweep_dir / "curves.md", "\n".join(lines) + "\n")


def summarize_sweep(sweep_dir: str | Path) -> list[dict]:
    """summary.csv/.md, curves.md and the overlay plots of a multirun; returns its rows, best first."""
    sweep_dir = Path(sweep_dir)
    rows = write_summary(sweep_dir)
    labels = job_labels({r["job"]: r["overrides"] for r in rows})
    plot_sweep(sweep_dir, labels)
    write_curves(sweep_dir, labels)
    return rows


def replot(folder: str) -> list[Path]:
    """A finished run's figures, or a sweep's tables and overlays, drawn again."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{folder}: not a folder")
    if any(path.glob("events.out.tfevents.*")):
        return plot_run(path)
    if not job_dirs(path):
        raise DataError(f"{folder}: holds neither a run (events.out.tfevents.*) nor a sweep's job folders")
    summarize_sweep(path)
    return sorted(path.glob("*.png"))
