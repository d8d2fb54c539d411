"""A multirun's tables (summary.csv/.md: one row per job, best first, and mean ± std per recipe
over folds or seeds, also in recipes.csv; curves.md), its overlay plots (a recipe's seeds or folds
as one mean line with a band) and mean_runs/ (those means for TensorBoard), at the sweep root."""

import csv
import json
import math
import re
import statistics
from pathlib import Path

import yaml

from captcha_lab.analysis.plots import plot_run, plot_sweep
from captcha_lab.analysis.runs import (
    failed_jobs,
    histories_by_label,
    job_dirs,
    job_name,
    job_order,
    read_history,
    write_mean_runs,
)
from captcha_lab.atomic import write_text, writing
from captcha_lab.errors import ERROR_FILE, DataError

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


def job_overrides(job: Path) -> str:
    """A job's command-line overrides (its .hydra/overrides.yaml), as one string."""
    overrides_file = job / ".hydra" / "overrides.yaml"
    return " ".join((yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else None) or [])


def collect(sweep_dir: Path) -> list[dict]:
    rows = []
    for job in job_dirs(sweep_dir):
        metrics_file = job / "metrics.json"
        if not metrics_file.is_file():
            continue
        timing_file = job / "timing.json"
        timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        row = {"job": job_name(sweep_dir, job), "overrides": job_overrides(job)}
        rows.append({**row, **json.loads(metrics_file.read_text()), **timing})
    # Ties (short runs often all score 0) broken by the last epoch's val/char_acc.
    return sorted(
        rows, key=lambda r: tuple(best_first(r.get(k, math.nan)) for k in ("val/seq_acc_best", "val/char_acc"))
    )


def best_first(score: float) -> float:
    """A sort key: the highest score first, NaN (a job that never validated) last."""
    return -score if math.isfinite(score) else math.inf


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


REPEATS = re.compile(r"(^|\s)(data\.fold|seed)=\S+")  # overrides that only repeat a recipe


def recipe_of(overrides: str) -> str:
    return REPEATS.sub("", overrides).strip()


# The last epoch's val scores come first: the honest estimate, as no epoch was picked by them.
# The test scores are best.ckpt's, the epoch picked on val/seq_acc.
AGGREGATED = ("val/seq_acc", "val/seq_acc_best", "val/char_acc", "test/seq_acc", "test/char_acc")

# A run whose best val/seq_acc stays at or below this never left the initial plateau, where the
# model predicts each position's commonest characters and gets (almost) no captcha whole right.
STUCK_AT = 0.01


def aggregate(rows: list[dict], keys: tuple[str, ...] = AGGREGATED) -> list[dict]:
    """Per recipe (a job's overrides without data.fold= and seed=): the number of jobs `n`, how
    many of them are `stuck` on the plateau and, per key, (mean, sample std): the k-fold /
    multi-seed estimate. Best mean of the first key first."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(recipe_of(row["overrides"]), []).append(row)
    out = []
    for recipe, members in groups.items():
        stuck = sum(m.get("val/seq_acc_best", math.nan) <= STUCK_AT for m in members)
        group = {"recipe": recipe or "(defaults)", "n": len(members), "stuck": stuck}
        for key in keys:
            values = [m[key] for m in members if key in m]
            if values:
                group[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        out.append(group)

    def rank(group: dict) -> float:
        return best_first(group.get(keys[0], (math.nan,))[0])

    return sorted(out, key=rank)


def write_summary(sweep_dir: str | Path) -> list[dict]:
    """Write summary.csv and summary.md at the sweep root (and recipes.csv where a recipe ran
    over several folds or seeds); jobs without metrics.json are left out."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    with writing(sweep_dir / "summary.csv") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    groups = aggregate(rows)
    if any(g["n"] > 1 for g in groups):
        lines += _recipe_table(groups)
        _write_recipes_csv(sweep_dir / "recipes.csv", groups)
    lines += _failed_jobs(sweep_dir)
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


def _failed_jobs(sweep_dir: Path) -> list[str]:
    """Lines naming the jobs that stopped on an error (their error.txt), which no table holds:
    else a recipe's n would drop by one without a word."""
    failed = failed_jobs(sweep_dir)
    if not failed:
        return []
    lines = ["", f"{len(failed)} job(s) failed and are left out above (each one's error.txt):", ""]
    return lines + [f"- {job_name(sweep_dir, job)}: {(job / ERROR_FILE).read_text().strip()}" for job in failed]


def _shown(groups: list[dict]) -> list[str]:
    return [k for k in AGGREGATED if any(k in g for g in groups)]  # no empty test columns


def _recipe_table(groups: list[dict]) -> list[str]:
    """Mean ± std per recipe over its folds/seeds, with its count of runs stuck on the plateau."""
    keys = _shown(groups)
    short = job_labels({g["recipe"]: g["recipe"] for g in groups})  # what sets each recipe apart
    common = [t for t in groups[0]["recipe"].split() if t not in short[groups[0]["recipe"]].split()]
    lines = [
        "",
        "Per recipe, mean ± std (sample std) over its folds/seeds. val/seq_acc: the last epoch's, the"
        " honest estimate; val/seq_acc_best: the best epoch's, picked on val, so optimistic; test/*:"
        f" that best epoch's checkpoint. stuck: runs whose best val/seq_acc stayed ≤ {STUCK_AT}"
        " (never left the initial plateau), counted in the means:",
        "",
        "| recipe | n | stuck | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for g in groups:
        cells = [f"{g[k][0]:.4f} ± {g[k][1]:.4f}" if k in g else "" for k in keys]
        lines.append(f"| {short[g['recipe']]} | {g['n']} | {g['stuck']} of {g['n']} | " + " | ".join(cells) + " |")
    if len(groups) > 1 and common:
        lines += ["", f"Common to all recipes: `{' '.join(common)}`"]
    return lines


def _write_recipes_csv(path: Path, groups: list[dict]) -> None:
    keys = _shown(groups)
    with writing(path) as f:
        writer = csv.writer(f)
        writer.writerow(["recipe", "n", "stuck"] + [f"{k} {stat}" for k in keys for stat in ("mean", "std")])
        for g in groups:
            cells = [v for k in keys for v in g.get(k, ("", ""))]
            writer.writerow([g["recipe"], g["n"], g["stuck"], *cells])


def job_labels(overrides: dict[str, str]) -> dict[str, str]:
    """Job dir name -> the overrides that set it apart from the sweep's other jobs."""
    tokens = {job: o.split() for job, o in overrides.items()}
    common = set.intersection(*(set(t) for t in tokens.values())) if len(tokens) > 1 else set()
    return {job: " ".join(t for t in ts if t not in common) or job for job, ts in tokens.items()}


def recipe_labels(overrides: dict[str, str]) -> dict[str, str]:
    """Job dir name -> its recipe's label, shared by the jobs that differ only in seed= or
    data.fold= (the plots draw them as one mean line); job_labels where no recipe repeats."""
    recipes = {job: recipe_of(o) for job, o in overrides.items()}
    if len(set(recipes.values())) == len(recipes):
        return job_labels(overrides)
    if len(set(recipes.values())) == 1:  # a seed or fold sweep of one recipe: nothing sets it apart
        return dict.fromkeys(recipes, "all runs")
    labels = job_labels(recipes)
    return {job: recipes[job] or "(defaults)" if label == job else label for job, label in labels.items()}


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
    """summary.csv/.md, curves.md, the overlay plots and mean runs of a multirun; returns its rows, best first."""
    sweep_dir = Path(sweep_dir)
    rows = write_summary(sweep_dir)
    overrides = {r["job"]: r["overrides"] for r in rows}
    # A job stopped before its metrics.json (SIGTERM) logged a curve all the same: it joins its recipe's.
    stopped = (j for j in job_dirs(sweep_dir) if job_name(sweep_dir, j) not in overrides)
    overrides |= {job_name(sweep_dir, j): job_overrides(j) for j in stopped if any(j.glob("events.out.tfevents.*"))}
    recipes = recipe_labels(overrides)
    plot_sweep(sweep_dir, recipes)
    write_mean_runs(sweep_dir, histories_by_label(sweep_dir, recipes))
    write_curves(sweep_dir, job_labels(overrides))
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
