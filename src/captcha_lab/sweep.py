"""A multirun's summary table: one row per job, best first."""

import csv
import json
import re
import statistics
from pathlib import Path

import yaml

COLUMNS = [
    "job",
    "overrides",
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
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json")):
        job = metrics_file.parent
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        timing_file = job / "timing.json"
        timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        row = {"job": job.name, "overrides": " ".join(overrides or [])}
        rows.append({**row, **json.loads(metrics_file.read_text()), **timing})
    return sorted(rows, key=lambda r: -r.get("val/seq_acc_best", float("-inf")))


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


REPEATS = re.compile(r"(^|\s)(data\.fold|seed)=\S+")  # overrides that only repeat a recipe


def aggregate(rows: list[dict], key: str = "val/seq_acc_best") -> list[dict]:
    """Mean and sample std of `key` per recipe, a recipe being a job's overrides without
    data.fold= and seed=: the k-fold / multi-seed estimate, best mean first."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        if key in row:
            groups.setdefault(REPEATS.sub("", row["overrides"]).strip(), []).append(row[key])
    out = [
        {
            "recipe": r or "(defaults)",
            "n": len(v),
            "mean": statistics.mean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
        }
        for r, v in groups.items()
    ]
    return sorted(out, key=lambda g: -g["mean"])


def write_summary(sweep_dir: str | Path) -> list[dict]:
    """Write summary.csv and summary.md at the sweep root; jobs without metrics.json are left out."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    lines += [
        "",
        "Per recipe, over its folds/seeds (val/seq_acc_best):",
        "",
        "| recipe | n | mean ± std |",
        "|---|---|---|",
    ]
    lines += [f"| {g['recipe']} | {g['n']} | {g['mean']:.4f} ± {g['std']:.4f} |" for g in aggregate(rows)]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return rows
