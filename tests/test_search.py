"""Random search (Optuna, SQLite storage) and parallel joblib sweeps, end to end."""

import sqlite3

import pytest
import yaml

from .conftest import QUIET, run_script


@pytest.mark.slow
def test_two_trial_random_search_with_sqlite(tiny_dir, tmp_path):
    sweep, db = tmp_path / "search", tmp_path / "optuna.db"
    args = ["hparams_search=random", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=sqlite:///{db}"]
    done = run_script(
        "train.py", *args, f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", f"hydra.sweep.dir={sweep}", *QUIET
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {"lr", "optimizer", "activation", "model.dropout", "batch_size"}
    assert 1e-5 <= result["best_params"]["lr"] <= 1e-2 and 0 <= result["best_value"] <= 1
    with sqlite3.connect(db) as con:  # both trials recorded as complete in the study's storage
        assert con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone() == (2,)
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3
    assert (sweep / "val_seq_acc.png").stat().st_size > 5000


@pytest.mark.slow
def test_two_job_joblib_sweep(tiny_dir, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optimizer=adam,sgd"]
    done = run_script(
        "train.py", *args, f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", f"hydra.sweep.dir={sweep}", *QUIET
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((sweep / j / "metrics.json").is_file() for j in jobs)
    assert (sweep / "val_loss.png").stat().st_size > 5000


def test_slurm_launcher_config_composes(make_cfg):
    cfg = make_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu")
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1
