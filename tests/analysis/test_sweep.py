"""A sweep's summary (analysis.sweep): recipes over folds and seeds, ranking, the per-recipe table; a finite score."""

import json

import pytest

from captcha_lab.analysis.sweep import aggregate, collect, write_summary


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


@pytest.mark.parametrize("swept,per_recipe", [("lr", False), ("seed", True)])
def test_sweep_summary_has_a_per_recipe_table_only_for_repeated_recipes(tmp_path, swept, per_recipe):
    for i, value in enumerate([1, 2]):
        job = tmp_path / f"{i}_job"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- {swept}={value}\n")
        (job / "metrics.json").write_text(json.dumps({"val/seq_acc_best": 0.5 + i / 10}))
    assert [r["job"] for r in write_summary(tmp_path)] == ["1_job", "0_job"]
    assert ("Per recipe" in (tmp_path / "summary.md").read_text()) == per_recipe
