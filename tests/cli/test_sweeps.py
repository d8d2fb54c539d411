"""Sweeps: the README's multirun, Optuna over joblib jobs (real processes), failed and nested jobs, SLURM's config."""

import csv
import sqlite3

import pytest
import yaml

from ..conftest import QUIET
from .conftest import TINY, run_main, start

# Each real sweep: the test that needs it -> its train.py arguments besides the tiny set's and
# the sweep dir.
PROCESSES = {
    "test_multirun_three_optimizers_writes_summary": ["-m", "optimizer=adam,sgd,rmsprop", "~callbacks.progress_bar"],
    "test_random_search_of_two_parallel_joblib_trials_with_sqlite": [
        "hparams_search=random",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",  # both trials in one batch, which ...
        "hydra/launcher=joblib",  # ... runs in two joblib worker processes
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.storage=sqlite:///{root}/optuna.db",
        *QUIET,
    ],
}


@pytest.fixture(scope="module", autouse=True)
def sweeps(request, tmp_path_factory, tiny_dir):
    """The real sweeps of the selected tests, started together before this module's first test
    (their imports, ~5 s of one core each, run beside the tests in process): test name ->
    (process, sweep dir, its stdout file)."""
    started = {}
    for name, args in PROCESSES.items():
        if any(item.name == name for item in request.session.items):
            root = tmp_path_factory.mktemp(name.removeprefix("test_")[:20])
            args = [a.format(root=root) for a in args]
            sweep_args = [f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", f"hydra.sweep.dir={root}/sweep"]
            started[name] = (start("train.py", *args, *sweep_args, out=root / "out"), root / "sweep", root / "out")
    yield started
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def finished(sweeps: dict, name: str):
    """Its sweep dir, once it has ended well (the fixture kills it after a timeout)."""
    process, sweep, out = sweeps[name]
    assert process.wait(timeout=600) == 0, out.with_suffix(".err").read_text()[-3000:]
    return sweep


def test_slurm_launcher_config_composes(make_cfg):
    cfg = make_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu")
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.slow
def test_a_sweep_goes_on_past_a_job_with_a_bad_value(tmp_path, tiny_dir):
    sweep = tmp_path / "sweep"
    code, stderr = run_main(
        "train.py", "-m", f"data.dir={tiny_dir}", *TINY, "lr=1e-3,-1,1e-4", f"hydra.sweep.dir={sweep}"
    )
    assert code == 2  # the sweep as a whole failed ...
    bad_job = "1_synthetic-report_cnn-adam-lr-1.0-relu"
    last_line = stderr.strip().splitlines()[-1]
    assert last_line == f"error: 1 sweep job(s) failed ({bad_job}); the first: lr must be a positive number, got -1.0"
    # ... but the jobs after the bad one ran, and the summary has them.
    assert [p.parent.name[0] for p in sorted(sweep.glob("*/metrics.json"))] == ["0", "2"]
    assert (sweep / bad_job / "error.txt").is_file()
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3  # header + the two jobs
    failed = f"1 job(s) failed and are left out above (each one's error.txt):\n\n- {bad_job}: lr must be a"
    assert failed in (sweep / "summary.md").read_text()


@pytest.mark.slow
def test_a_sweep_goes_on_past_a_job_that_crashes(tmp_path, tiny_dir):
    # Lightning's ValueError inside fit is no user error of ours; Hydra's sweeper would re-raise
    # it and end the sweep with no summary of the jobs that ran.
    sweep = tmp_path / "sweep"
    code, stderr = run_main(
        "train.py", "-m", f"data.dir={tiny_dir}", *TINY, "+trainer.val_check_interval=100000,1",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert code == 2
    crashed = "0_synthetic-report_cnn-adam-lr0.001-relu"
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: 1 sweep job(s) failed ({crashed}); the first: crashed: ValueError: `val_check_interval` (100000)"
        )
    )
    assert "Traceback" in (sweep / crashed / "train.log").read_text()
    assert [p.parent.name[0] for p in sweep.glob("*/metrics.json")] == ["1"]
    assert len((sweep / "summary.csv").read_text().splitlines()) == 2  # header + the job that ran


@pytest.mark.slow
def test_a_sweep_into_nested_job_dirs_is_summarized(tmp_path, tiny_dir):
    sweep = tmp_path / "sweep"
    code, stderr = run_main(
        "train.py",
        "-m",
        f"data.dir={tiny_dir}",
        *TINY,
        "optimizer=adam,sgd",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}/${hydra:runtime.choices.optimizer}",
    )
    assert code == 0, stderr
    with open(sweep / "summary.csv") as f:
        assert sorted(row["job"] for row in csv.DictReader(f)) == ["0/adam", "1/sgd"]
    curves = (sweep / "curves.md").read_text()  # a row per job, labelled by what sets it apart
    assert "| optimizer=adam | 1 |" in curves and "| optimizer=sgd | 1 |" in curves
    assert {p.name for p in sweep.glob("val_*.png")} == {"val_seq_acc.png", "val_char_acc.png", "val_loss.png"}


@pytest.mark.slow
def test_multirun_three_optimizers_writes_summary(sweeps):
    sweep = finished(sweeps, "test_multirun_three_optimizers_writes_summary")
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # Dirs are <job.num>_<run_name> (optimizer third in run_name); the basic sweeper numbers the
    # jobs in the order the overrides list them, and fewer than 10 sort by number.
    assert [(j.split("_", 1)[0], j.split("-")[2]) for j in jobs] == [("0", "adam"), ("1", "sgd"), ("2", "rmsprop")]
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert len(summary) == 4 and summary[0].startswith("job,overrides,val/seq_acc,val/char_acc,val/seq_acc_best")
    assert "optimizer=" in (sweep / "summary.md").read_text()
    for job in jobs:
        assert yaml.safe_load((sweep / job / ".hydra" / "config.yaml").read_text())["epochs"] == 1


@pytest.mark.slow
def test_random_search_of_two_parallel_joblib_trials_with_sqlite(sweeps):
    sweep = finished(sweeps, "test_random_search_of_two_parallel_joblib_trials_with_sqlite")
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {"lr", "optimizer", "activation", "model.dropout", "batch_size"}
    assert 1e-5 <= result["best_params"]["lr"] <= 1e-2 and 0 <= result["best_value"] <= 1
    with sqlite3.connect(sweep.parent / "optuna.db") as con:  # both trials recorded as complete in the study
        assert con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone() == (2,)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all((j / "metrics.json").is_file() for j in jobs)
    assert all("JoblibLauncher" in (j / ".hydra" / "hydra.yaml").read_text() for j in jobs)
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3
    assert (sweep / "val_seq_acc.png").stat().st_size > 5000 and (sweep / "val_loss.png").stat().st_size > 5000
