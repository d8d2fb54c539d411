"""Hydra callbacks of train.py: earlier runs and sweeps kept, resumes in place, failed sweep jobs named."""

import pytest
from omegaconf import OmegaConf

from captcha_lab.cli.hydra_hooks import FailedJobs, KeepEarlierRuns
from captcha_lab.cli.no_sweeps import NoSweeps

from .conftest import TINY, run_main, tree_digest


@pytest.mark.slow
def test_a_reused_run_or_sweep_dir_is_refused_before_hydra_rewrites_it(tmp_path, tiny_dir):
    # Through hydra.main, which runs the hook before it writes the dir's .hydra/ and train.log.
    # Named after ${run_name} like the default run dir, which resolves only once Hydra's config is set.
    run_arg, run = (
        f"hydra.run.dir={tmp_path}/run_${{run_name}}",
        tmp_path / "run_synthetic-report_cnn-adam-lr0.001-relu",
    )
    sweep, base = tmp_path / "sweep", [f"data.dir={tiny_dir}", *TINY, "~logger"]
    first, first_err = run_main("train.py", *base, run_arg)
    assert first == 0 and "KeepEarlierRuns" not in first_err  # Hydra turns a hook's exception into a warning
    swept, sweep_err = run_main("train.py", "-m", *base, f"hydra.sweep.dir={sweep}")
    assert swept == 0 and "KeepEarlierRuns" not in sweep_err
    before = tree_digest(run), tree_digest(sweep)
    # A rerun (here with another seed) would have rewritten .hydra/config.yaml, which eval.py reads.
    run_again, run_err = run_main("train.py", *base, "seed=1", run_arg)
    sweep_again, sweep_err = run_main("train.py", "-m", *base, "lr=1e-4", f"hydra.sweep.dir={sweep}")
    assert (run_again, sweep_again) == (2, 2)
    held = f"error: hydra.run.dir: {run} already holds a run (checkpoints/best.ckpt); "
    own = f"({run}/checkpoints/...)"
    assert run_err.strip() == held + f"choose another, or resume it with a checkpoint of its own {own}"
    assert sweep_err.strip().startswith(f"error: hydra.sweep.dir: {sweep} already holds a sweep (multirun.yaml)")
    assert (tree_digest(run), tree_digest(sweep)) == before
    # Resuming in place (a requeued SLURM job) is allowed; one the resume's checks refuse (here
    # another split) leaves the run's own .hydra/ config, which eval.py reads, as it was.
    resume = [f"ckpt_path={run}/checkpoints/last.ckpt", run_arg]
    refused, refused_err = run_main("train.py", *base, "seed=1", *resume)
    resumed, _ = run_main("train.py", *base, "epochs=2", *resume)
    assert refused == 2 and "trained on another split" in refused_err and resumed == 0
    assert {k: v for k, v in tree_digest(run).items() if k.startswith(".hydra/") and "resume-" not in k} == {
        k: v for k, v in before[0].items() if k.startswith(".hydra/")
    }
    assert "epochs=2" in (run / ".hydra" / "resume-2" / "overrides.yaml").read_text()


def test_failed_sweep_jobs_are_named_in_job_order(tmp_path, capsys):
    jobs = [("10_b", "second"), ("2_a", "first"), ("3_c", None), ("11/d", "nested"), ("9/e", "nested")]
    for job, message in jobs:
        (tmp_path / job).mkdir(parents=True)
        if message:
            (tmp_path / job / "error.txt").write_text(message + "\n")
    with pytest.raises(SystemExit) as stop:
        FailedJobs().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: 4 sweep job(s) failed (2_a, 9/e, 10_b, 11/d); the first: first\n"


def test_a_sweep_dir_left_by_a_sweep_that_never_started_a_job_is_reused(make_cfg, tmp_path, capsys):
    # `-m optimizer=adam,adamm` stops composing after Hydra wrote multirun.yaml: the corrected
    # command may run there. With a job's folder beside it, it is a sweep that ran.
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    KeepEarlierRuns().on_multirun_start(make_cfg(f"hydra.sweep.dir={sweep}"))
    (sweep / "0_job" / ".hydra").mkdir(parents=True)
    with pytest.raises(SystemExit):
        KeepEarlierRuns().on_multirun_start(make_cfg(f"hydra.sweep.dir={sweep}"))
    assert "already holds a sweep (multirun.yaml)" in capsys.readouterr().err


def test_a_sweep_dir_holding_jobs_at_any_depth_is_refused(make_cfg, tmp_path, capsys):
    # A hydra.sweep.subdir with `/` (e.g. `${optimizer}/${lr}`) puts the jobs deeper; optuna
    # writes no multirun.yaml, so the jobs themselves show that a sweep ran there.
    sweep = tmp_path / "sweep"
    config = make_cfg(f"hydra.sweep.dir={sweep}")
    (sweep / "adam" / "0.001" / "checkpoints").mkdir(parents=True)
    KeepEarlierRuns().on_multirun_start(config)  # no checkpoint yet: a sweep may start there
    (sweep / "adam" / "0.001" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):
        KeepEarlierRuns().on_multirun_start(config)
    held = "already holds a sweep (adam/0.001/checkpoints/last.ckpt)"
    assert capsys.readouterr().err == f"error: hydra.sweep.dir: {sweep} {held}; choose another dir\n"


def test_a_run_dir_holding_a_sweep_and_a_sweep_dir_holding_a_run_are_refused(make_cfg, tmp_path, capsys):
    sweep, run = tmp_path / "sweep", tmp_path / "done"
    (sweep / "0_job" / "checkpoints").mkdir(parents=True)
    (sweep / "0_job" / "checkpoints" / "best.ckpt").write_bytes(b"")
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    for hook, key, folder, held in [
        ("on_run_start", "hydra.run.dir", sweep, "a sweep (0_job/checkpoints/best.ckpt)"),
        ("on_run_start", "hydra.run.dir", tmp_path, "a sweep (done/checkpoints/last.ckpt)"),  # a folder of runs
        ("on_multirun_start", "hydra.sweep.dir", run, "a run (checkpoints/last.ckpt)"),
    ]:
        with pytest.raises(SystemExit):
            getattr(KeepEarlierRuns(), hook)(make_cfg(f"{key}={folder}"))
        assert capsys.readouterr().err == f"error: {key}: {folder} already holds {held}; choose another dir\n"


def test_a_resume_in_place_writes_its_config_beside_the_runs_own(make_cfg, tmp_path):
    run = tmp_path / "done"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    for k in (1, 2):
        config = make_cfg(f"hydra.run.dir={run}", f"ckpt_path={run}/checkpoints/last.ckpt")
        KeepEarlierRuns().on_run_start(config)  # allowed: ckpt_path is inside the run dir
        assert config.hydra.output_subdir == f".hydra/resume-{k}"  # .hydra/config.yaml stays the run's
        (run / config.hydra.output_subdir).mkdir(parents=True)
    ddp_rank = make_cfg(f"hydra.run.dir={run}", f"ckpt_path={run}/checkpoints/last.ckpt", "hydra.output_subdir=null")
    KeepEarlierRuns().on_run_start(ddp_rank)
    assert ddp_rank.hydra.output_subdir is None


def test_a_sweep_subdir_without_the_job_number_is_refused(make_cfg, tmp_path, capsys):
    # ${run_name} alone: seed=0,1 wrote both jobs into one dir, the second over the first.
    with pytest.raises(SystemExit):
        KeepEarlierRuns().on_multirun_start(make_cfg(f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${run_name}"))
    refused = "error: hydra.sweep.subdir: ${run_name} names no ${hydra.job.num} (nor its id or override_dirname); "
    assert capsys.readouterr().err == refused + "jobs could share a dir and overwrite it\n"
    for unique in ("${hydra:job.num}", "job${hydra.job.id}", "${hydra.job.override_dirname}"):
        config = make_cfg(f"hydra.sweep.dir={tmp_path}/{len(unique)}", f"hydra.sweep.subdir={unique}")
        KeepEarlierRuns().on_multirun_start(config)  # unique per job: no refusal


def test_a_resume_into_a_folder_above_its_run_is_refused(make_cfg, tmp_path, capsys):
    # A job's checkpoint with hydra.run.dir at its sweep's root: the run would land in the sweep.
    job = tmp_path / "sweep" / "0_job"
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(SystemExit):
        KeepEarlierRuns().on_run_start(
            make_cfg(f"hydra.run.dir={job.parent}", f"ckpt_path={job}/checkpoints/last.ckpt")
        )
    held = "already holds a sweep (0_job/checkpoints/last.ckpt); choose another dir"
    assert capsys.readouterr().err == f"error: hydra.run.dir: {job.parent} {held}\n"


def test_a_run_dir_that_is_the_data_folder_is_refused(make_cfg, tmp_path, tiny_dir, capsys):
    # Its loss.png and accuracy.png would be read as captchas labelled "loss" and "accuracy".
    for key, other in (("data.dir", "data.test_dir"), ("data.test_dir", "data.dir")):
        with pytest.raises(SystemExit):
            KeepEarlierRuns().on_run_start(
                make_cfg(f"hydra.run.dir={tiny_dir}", f"{key}={tiny_dir}", f"{other}={tmp_path}")
            )
        refused = f"error: hydra.run.dir: {tiny_dir} is {key}: the run's figures would become its images"
        assert capsys.readouterr().err == refused + "; choose another\n"
    KeepEarlierRuns().on_run_start(make_cfg(f"hydra.run.dir={tiny_dir}/run"))  # a folder inside it is never read


def test_a_dir_that_is_a_file_or_inside_a_run_or_empty_is_refused(make_cfg, tmp_path, capsys):
    # A file: a FileExistsError traceback from Hydra's mkdir. Inside a run (its checkpoints/):
    # the new run's outputs would sit among that run's.
    (tmp_path / "afile").write_text("x")
    (tmp_path / "done" / "checkpoints").mkdir(parents=True)
    (tmp_path / "done" / "checkpoints" / "best.ckpt").write_bytes(b"")
    (tmp_path / "done" / ".hydra").mkdir()
    (tmp_path / "done" / ".hydra" / "config.yaml").write_text("{}\n")
    for hook, key in (("on_run_start", "hydra.run.dir"), ("on_multirun_start", "hydra.sweep.dir")):
        for folder, why in [
            (tmp_path / "afile", f"{tmp_path}/afile is a file, not a folder"),
            (tmp_path / "afile" / "sub", f"{tmp_path}/afile is a file, not a folder"),
            (tmp_path / "done" / "checkpoints", f"{tmp_path}/done/checkpoints is inside the run in {tmp_path}/done"),
        ]:
            with pytest.raises(SystemExit):
                getattr(KeepEarlierRuns(), hook)(make_cfg(f"{key}={folder}"))
            assert capsys.readouterr().err.startswith(f"error: {key}: {why}")
        with pytest.raises(SystemExit):  # else the current dir, whatever it holds
            getattr(KeepEarlierRuns(), hook)(make_cfg(f"{key}="))
        assert capsys.readouterr().err == f"error: {key} is empty; name a new dir\n"


def test_predict_and_serve_refuse_a_sweep_before_it_makes_a_dir(capsys):
    # serve.py -m started one server after the other, each until stopped.
    config = OmegaConf.create({"hydra": {"job": {"name": "serve"}}})
    with pytest.raises(SystemExit) as stop:
        NoSweeps().on_multirun_start(config)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "error: serve.py runs one job, not a sweep (-m); run one command per setting\n"


def test_a_stray_checkpoint_above_the_run_dir_is_no_run(make_cfg, tmp_path):
    """A downloaded checkpoints/x.ckpt (or error.txt) in a folder above: no run's .hydra/ there."""
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "pretrained.ckpt").write_bytes(b"")
    (tmp_path / "error.txt").write_text("sbatch's\n")
    KeepEarlierRuns().on_run_start(make_cfg(f"hydra.run.dir={tmp_path}/outputs/runs/new"))
