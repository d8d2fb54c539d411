"""A sweep's summary (analysis.sweep): recipes over folds and seeds, ranking, the per-recipe table
with its stuck count; a finite score."""

import csv
import json

import pytest

from captcha_lab.analysis.sweep import aggregate, collect, write_curves, write_summary

from .fake_sweep import make_job


def test_sweep_aggregate_groups_folds_and_seeds():
    rows = [
        {"overrides": "lr=1e-3 data.fold=0", "val/seq_acc": 0.9, "val/seq_acc_best": 0.95},
        {"overrides": "lr=1e-3 data.fold=1", "val/seq_acc": 0.8, "val/seq_acc_best": 0.85},
        {"overrides": "seed=2 lr=3e-3", "val/seq_acc": 0.93, "val/seq_acc_best": 0.93},
    ]
    best, other = aggregate(rows)  # ranked by the last epoch's val/seq_acc, not the best epoch's
    assert (best["recipe"], best["n"], best["val/seq_acc"]) == ("lr=3e-3", 1, (0.93, 0.0))
    assert other["recipe"] == "lr=1e-3" and other["n"] == 2 and "val/char_acc" not in other
    mean, std = other["val/seq_acc"]
    assert abs(mean - 0.85) < 1e-9 and abs(std - 0.0707) < 1e-3
    assert abs(other["val/seq_acc_best"][0] - 0.9) < 1e-9


def test_sweep_summary_ranks_a_job_that_never_validated_last(tmp_path):
    for i, score in enumerate([0.2, float("nan"), 0.9, 0.5]):  # NaN: e.g. trainer.limit_val_batches=0
        (tmp_path / f"{i}_job").mkdir()
        (tmp_path / f"{i}_job" / "metrics.json").write_text(json.dumps({"val/seq_acc_best": score}))
    assert [row["job"] for row in collect(tmp_path)] == ["2_job", "3_job", "0_job", "1_job"]


def test_sweep_rows_tied_on_seq_acc_are_ranked_by_char_acc(tmp_path):
    make_job(tmp_path, "0_a", ["optimizer=adam"], {"val/seq_acc_best": 0.0, "val/char_acc": 0.04})
    make_job(tmp_path, "1_b", ["optimizer=sgd"], {"val/seq_acc_best": 0.0, "val/char_acc": 0.06})
    make_job(tmp_path, "2_c", ["optimizer=rmsprop"], {"val/seq_acc_best": 0.1, "val/char_acc": 0.01})
    assert [row["job"] for row in collect(tmp_path)] == ["2_c", "1_b", "0_a"]


@pytest.mark.parametrize("swept,per_recipe", [("lr", False), ("seed", True)])
def test_sweep_summary_has_a_per_recipe_table_only_for_repeated_recipes(tmp_path, swept, per_recipe):
    for i, value in enumerate([1, 2]):
        job = tmp_path / f"{i}_job"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- {swept}={value}\n")
        (job / "metrics.json").write_text(json.dumps({"val/seq_acc_best": 0.5 + i / 10}))
    assert [r["job"] for r in write_summary(tmp_path)] == ["1_job", "0_job"]
    assert ("Per recipe" in (tmp_path / "summary.md").read_text()) == per_recipe


def seed_sweep(sweep):
    """Two optimizers over seeds 0, 1, 2 (seed first, as the report_* experiments sweep), one
    SGD seed stuck on the plateau."""
    scores = {"adam": [0.5, 0.6, 0.7], "sgd": [0.4, 0.005, 0.5]}
    for i, (seed, opt) in enumerate((s, o) for s in range(3) for o in scores):
        best = scores[opt][seed]
        metrics = {"val/seq_acc_best": best, "val/seq_acc": best - 0.1, "test/seq_acc": best / 2, "test/char_acc": 0.8}
        make_job(sweep, f"{i}_{opt}", [f"seed={seed}", f"optimizer={opt}", "epochs=60"], metrics)


def test_seed_sweep_summary_has_mean_and_std_per_setting_and_the_stuck_count(tmp_path):
    seed_sweep(tmp_path)
    write_summary(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "≤ 0.01" in md  # the stuck rule is in the caption
    header = next(line for line in md.splitlines() if line.startswith("| recipe"))
    assert header.split(" | ")[1:4] == ["n", "stuck", "val/seq_acc"]
    assert "test/seq_acc" in header and "test/char_acc" in header
    adam = next(line for line in md.splitlines() if line.startswith("| optimizer=adam |"))
    sgd = next(line for line in md.splitlines() if line.startswith("| optimizer=sgd |"))
    assert "Common to all recipes: `epochs=60`" in md
    assert "| 3 | 0 of 3 | 0.5000 ± 0.1000 | 0.6000 ± 0.1000 |" in adam  # val last, then val best
    assert "| 3 | 1 of 3 |" in sgd and "0.8000 ± 0.0000" in sgd
    with open(tmp_path / "recipes.csv") as f:
        recipes = list(csv.DictReader(f))
    assert [(r["recipe"], r["n"], r["stuck"]) for r in recipes] == [
        ("optimizer=adam epochs=60", "3", "0"),
        ("optimizer=sgd epochs=60", "3", "1"),
    ]
    assert abs(float(recipes[0]["test/seq_acc mean"]) - 0.3) < 1e-9


def test_single_seed_sweep_writes_no_recipe_table_nor_csv(tmp_path):
    make_job(tmp_path, "0_a", ["lr=1e-3"], {"val/seq_acc_best": 0.5})
    make_job(tmp_path, "1_b", ["lr=1e-2"], {"val/seq_acc_best": 0.0})
    write_summary(tmp_path)
    assert "Per recipe" not in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "recipes.csv").exists()


def test_sweep_recipes_rank_by_the_last_epoch_and_a_job_at_the_stuck_line_is_stuck():
    rows = [
        {"overrides": "lr=1e-3 seed=0", "val/seq_acc": 0.90, "val/seq_acc_best": 0.99},
        {"overrides": "lr=1e-3 seed=1", "val/seq_acc": 0.01, "val/seq_acc_best": 0.01},  # one right in 100
        {"overrides": "lr=3e-3 seed=0", "val/seq_acc": 0.95, "val/seq_acc_best": 0.95},
    ]
    assert aggregate(rows)[1]["stuck"] == 1
    rows[1].update({"val/seq_acc": 0.99, "val/seq_acc_best": 0.99})  # last 0.945 < 0.95, best 0.99 > 0.95
    assert [g["recipe"] for g in aggregate(rows)] == ["lr=3e-3", "lr=1e-3"]


def test_sweep_curves_table_has_each_curves_last_and_best(tmp_path):
    curves = {"val/loss": [0.5, 0.3, 0.4], "val/seq_acc": [0.2, 0.6, 0.5]}
    make_job(tmp_path, "0_job", ["lr=1e-3"], {"val/seq_acc": 0.5}, curves)
    write_curves(tmp_path, {"0_job": "lr=1e-3"})
    row = (tmp_path / "curves.md").read_text().splitlines()[2]
    assert row.startswith("| lr=1e-3 | 3 | nan | nan | 0.5000 | 0.6000 | 0.4000 | 0.3000 |")
