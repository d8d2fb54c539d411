"""Bad input, user errors at the command line, untouched earlier runs, safe checkpoints, resource
bounds, seeded splits. Interruption and DDP (subprocess trainings) are in test_interrupt.py."""

import csv
import hashlib
import json
import logging
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from captcha_lab import atomic
from captcha_lab.charset import REPORT36, Charset
from captcha_lab.checkpoint import CheckpointError, check_resumable, read_checkpoint
from captcha_lab.data import CaptchaDataModule
from captcha_lab.errors import DataError
from captcha_lab.hydra_hooks import FailedJobs, KeepEarlierRuns
from captcha_lab.images import MAX_PIXELS, ImageError, read_gray
from captcha_lab.labelled import load_folder
from captcha_lab.pipeline import build, train
from captcha_lab.system import load_system

from .conftest import ROOT

CHARSET = Charset()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming width x height, and one tiny IDAT: a decompression
    bomb's header without its payload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture
def mixed_dir(tmp_path, tiny_dir) -> Path:
    """The tiny set plus a truncated PNG, a zero-byte file, a bomb, a broken link and a text file."""
    folder = tmp_path / "mixed"
    shutil.copytree(tiny_dir, folder)
    good = sorted(folder.glob("*.png"))
    (folder / "22222.png").write_bytes(good[0].read_bytes()[:200])  # truncated mid-IDAT
    (folder / "33333.png").write_bytes(b"")
    (folder / "44444.png").write_bytes(png_header(8_000, 8_000))
    (folder / "55555.png").symlink_to(folder / "gone.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_unreadable_files_are_skipped_and_named(mixed_dir, tiny_dir, caplog):
    with caplog.at_level(logging.WARNING):
        data = load_folder(mixed_dir, CHARSET, 5)
    assert len(data) == len(list(tiny_dir.glob("*.png")))
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipped 4 file(s) that could not be read" in warning
    for name in ("22222.png", "33333.png", "44444.png", "55555.png: cannot be opened"):
        assert name in warning


def test_training_goes_on_past_unreadable_files(make_cfg, mixed_dir):
    cfg = make_cfg(f"data.dir={mixed_dir}", "+trainer.fast_dev_run=true")
    train(cfg)
    assert (Path(cfg.hydra.runtime.output_dir) / "metrics.json").is_file()


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable image"),
        (png_header(8_000, 8_000), f"8000x8000 pixels is more than the limit of {MAX_PIXELS}"),
        (png_header(20_000, 20_000), "more pixels than the limit"),  # PIL's own bomb check fires first
    ],
)
def test_bad_image_is_refused_with_its_name(tmp_path, data, reason):
    path = tmp_path / "2b827.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=f"^{path}: {reason}"):
        read_gray(path)


def test_only_non_images_and_all_invalid_folders_are_errors(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "2b827.txt").write_text("x")
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path / "text", CHARSET, 5)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "2b827.png").write_bytes(b"")  # unreadable
    (tmp_path / "bad" / "aaaaa.png").write_bytes(png_header(200, 50))  # unknown characters
    (tmp_path / "bad" / "2b8.png").write_bytes(png_header(200, 50))  # wrong length
    with pytest.raises(DataError, match="no usable captcha images in .*bad"):
        load_folder(tmp_path / "bad", CHARSET, 5)


def test_same_seed_same_split_other_seed_other_split(tiny_dir):
    def val_names(seed):
        dm = CaptchaDataModule(dir=str(tiny_dir), seed=seed)
        dm.setup("fit")
        return dm.splits["val"].names

    assert val_names(0) == val_names(0)
    assert val_names(0) != val_names(1)


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


# Runs train.py's `__main__` once per argv in ONE child process (importing torch/Lightning costs
# ~10 s per process), capturing what each run writes to stderr and its exit code.
CLI_RUNNER = """
import contextlib, io, json, runpy, sys
from hydra.core.global_hydra import GlobalHydra
argvs, out, results = json.loads(sys.argv[1]), sys.argv[2], []
for argv in argvs:
    GlobalHydra.instance().clear()
    sys.argv, err, code = ["train.py", *argv], io.StringIO(), 0
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_path("train.py", run_name="__main__")
        except SystemExit as e:
            code = e.code
    results.append([code, err.getvalue()])
open(out, "w").write(json.dumps(results))
"""


def test_user_errors_are_one_clear_line_and_leave_earlier_runs_alone(make_cfg, tmp_path, tiny_dir):
    earlier = make_cfg("epochs=1")
    train(earlier)
    earlier_run = Path(earlier.hydra.runtime.output_dir)
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "readme.md").write_text("x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "2b827.png").write_bytes(b"")
    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / "manifest.json").write_text("{bad")
    last = earlier_run / "checkpoints" / "last.ckpt"
    real = ["data=captcha_v2"]
    cases = [  # (overrides, exit code, what stderr must say)
        (["lrr=1"], 1, "Could not override 'lrr'"),
        (["+lrr=1"], 2, "error: lrr: no such key (+lrr= adds one that nothing reads); the keys: lr, batch_size,"),
        ([*real, "data.dir="], 2, "error: data.dir is empty; name a folder of images"),
        (["optimizer=adamm"], 1, "Could not find 'optimizer/adamm'"),
        (["lr=abc"], 1, "Error merging override lr=abc"),
        (["lr=-1"], 2, "error: lr must be a positive number, got -1.0"),
        (["batch_size=0"], 2, "error: batch_size must be at least 1, got 0"),
        (["epochs=0"], 2, "error: epochs must be at least 1, got 0"),
        ([*real, f"data.dir={tmp_path}/nope"], 2, f"error: data.dir: data folder not found: {tmp_path}/nope"),
        ([*real, f"data.test_dir={tmp_path}/nope"], 2, f"error: data.test_dir: data folder not found: {tmp_path}/nope"),
        ([*real, f"data.dir={tmp_path}/empty"], 2, f"error: no image files (.bmp, .gif, .jpeg, .jpg, .png, .tif, "
                                                   f".tiff, .webp) in {tmp_path}/empty"),
        ([*real, f"data.dir={tmp_path}/text"], 2, "error: no image files"),
        ([*real, f"data.dir={tmp_path}/bad"], 2, f"error: no usable captcha images in {tmp_path}/bad"),
        ([f"ckpt_path={tmp_path}/none.ckpt"], 2, f"error: ckpt_path: no checkpoint file at {tmp_path}/none.ckpt"),
        ([f"ckpt_path={last}", "charset=report36"], 2, f"error: {last}: trained on charset '2345678bcdefgmnpwxy'"),
        ([f"ckpt_path={last}", "model.hidden=32"], 2, f"error: {last}: holds another net (model.hidden=64 "
                                                      "there, 32 here)"),
        ([f"ckpt_path={last}", "activation=tanh"], 2, f"error: {last}: holds another net (model.activation="
                                                      "'relu' there, "),
        ([f"ckpt_path={last}", "data.length=4"], 2, f"error: {last}: trained on another split (data.length=5 "
                                                    "there, 4 here)"),
        (["-m", "trainer=ddp_cpu"], 2, "error: 1 sweep job(s) failed (0_synthetic-report_cnn-adam-lr0.001-relu); "
                                       "the first: trainer: DDP cannot run inside a multirun (-m, or an"),
        (["data.length=abc"], 2, "error: data.length must be an integer, got 'abc'"),
        (["data.test_fraction=1.5"], 2, "error: data.test_fraction must be in [0, 1), got 1.5"),
        (["data.synthetic=5", f"data.dir={tmp_path}/text"], 2, f"error: {tmp_path}/text holds files not made by"),
        (["data.synthetic=5", f"data.dir={tmp_path}/syn"], 2, f"error: {tmp_path}/syn/manifest.json: not a"),
        (["data.synthetic=5", f"data.dir={tmp_path}/text/readme.md"], 2, f"error: {tmp_path}/text/readme.md: cannot"),
        (["data.synthetic=5", f"data.dir={tmp_path}/text/readme.md/x"], 2, f"error: {tmp_path}/text/readme.md/x: "),
        ([f"ckpt_path={last}"], 2, f"error: epochs=1: {last} has trained 1; nothing left to train"),
    ]  # fmt: skip
    base = [f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", "~callbacks.progress_bar"]
    runs = [tmp_path / f"run{i}" for i in range(len(cases))]
    dirs = [[f"hydra.run.dir={r}", f"hydra.sweep.dir={r}"] for r in runs]
    # -m first; each case's overrides after `base`, so they win over its defaults.
    argvs = [
        [*(a for a in o if a == "-m"), *base, *(a for a in o if a != "-m"), *d]
        for (o, _, _), d in zip(cases, dirs, strict=True)
    ]
    before = tree_digest(earlier_run)
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-c", CLI_RUNNER, json.dumps(argvs), str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for (overrides, code, expected), (got_code, stderr) in zip(cases, json.loads(out.read_text()), strict=True):
        assert (got_code, "Traceback" not in stderr) == (code, True), (overrides, stderr)
        lines = [line for line in stderr.splitlines() if line.strip()]
        if code == 2:  # ours: exactly one line
            assert len(lines) == 1 and lines[0].startswith(expected), (overrides, stderr)
        else:  # Hydra's: a short message whose first line names the key
            assert expected in lines[0], (overrides, stderr)
    assert tree_digest(earlier_run) == before
    # A missing folder stops the run before its logger starts: no TensorBoard run for nothing.
    no_dir_run = runs[next(i for i, c in enumerate(cases) if f"data.dir={tmp_path}/nope" in c[0])]
    assert not list(no_dir_run.rglob("events.out.tfevents*"))
    assert f"error: data.dir: data folder not found: {tmp_path}/nope" in (no_dir_run / "train.log").read_text()
    bad_run = runs[next(i for i, c in enumerate(cases) if f"data.dir={tmp_path}/bad" in c[0])]
    assert "could not be read: " in (bad_run / "train.log").read_text()  # warnings reach the run's log


def test_a_reused_run_or_sweep_dir_is_refused_before_hydra_rewrites_it(tmp_path, tiny_dir):
    # Named after ${run_name} like the default run dir, which resolves only once Hydra's config is set.
    run_arg, run = (
        f"hydra.run.dir={tmp_path}/run_${{run_name}}",
        tmp_path / "run_synthetic-report_cnn-adam-lr0.001-relu",
    )
    sweep, out = tmp_path / "sweep", tmp_path / "results.json"
    base = [f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", "~callbacks.progress_bar"]

    def cli(*argvs: list[str]) -> list[tuple[int, str]]:
        done = subprocess.run([sys.executable, "-c", CLI_RUNNER, json.dumps(argvs), str(out)], cwd=ROOT)
        assert done.returncode == 0
        return json.loads(out.read_text())

    [(first, first_err), _] = cli([*base, run_arg], ["-m", *base, f"hydra.sweep.dir={sweep}"])
    assert first == 0 and "KeepEarlierRuns" not in first_err  # Hydra turns a hook's exception into a warning
    before = tree_digest(run), tree_digest(sweep)
    # A rerun (here with another seed) would have rewritten .hydra/config.yaml, which eval.py reads.
    (run_again, run_err), (sweep_again, sweep_err) = cli(
        [*base, "seed=1", run_arg], ["-m", *base, "lr=1e-4", f"hydra.sweep.dir={sweep}"]
    )
    assert (run_again, sweep_again) == (2, 2)
    held = f"error: hydra.run.dir: {run} already holds a run (checkpoints/best.ckpt); "
    own = f"({run}/checkpoints/...)"
    assert run_err.strip() == held + f"choose another, or resume it with a checkpoint of its own {own}"
    assert sweep_err.strip().startswith(f"error: hydra.sweep.dir: {sweep} already holds a sweep (multirun.yaml)")
    assert (tree_digest(run), tree_digest(sweep)) == before
    # Resuming in place (a requeued SLURM job) is allowed; one the resume's checks refuse (here
    # another split) leaves the run's own .hydra/ config, which eval.py reads, as it was.
    resume = [f"ckpt_path={run}/checkpoints/last.ckpt", run_arg]
    [(refused, refused_err), (resumed, _)] = cli([*base, "seed=1", *resume], [*base, "epochs=2", *resume])
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


def test_a_sweep_goes_on_past_a_job_with_a_bad_value(tmp_path, tiny_dir):
    sweep, out = tmp_path / "sweep", tmp_path / "results.json"
    argv = ["-m", f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", "~callbacks.progress_bar"]
    argv += ["lr=1e-3,-1,1e-4", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run([sys.executable, "-c", CLI_RUNNER, json.dumps([argv]), str(out)], cwd=ROOT)
    assert done.returncode == 0
    [(code, stderr)] = json.loads(out.read_text())
    assert code == 2  # the sweep as a whole failed ...
    bad_job = "1_synthetic-report_cnn-adam-lr-1.0-relu"
    last_line = stderr.strip().splitlines()[-1]
    assert last_line == f"error: 1 sweep job(s) failed ({bad_job}); the first: lr must be a positive number, got -1.0"
    # ... but the jobs after the bad one ran, and the summary has them.
    assert [p.parent.name[0] for p in sorted(sweep.glob("*/metrics.json"))] == ["0", "2"]
    assert (sweep / bad_job / "error.txt").is_file()
    assert len((sweep / "summary.csv").read_text().splitlines()) == 3  # header + the two jobs


def test_a_sweep_into_nested_job_dirs_is_summarized(tmp_path, tiny_dir):
    sweep, out = tmp_path / "sweep", tmp_path / "results.json"
    argv = ["-m", f"data.dir={tiny_dir}", "data.synthetic=0", "epochs=1", "~callbacks.progress_bar"]
    argv += [
        "optimizer=adam,sgd",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}/${hydra:runtime.choices.optimizer}",
    ]
    subprocess.run([sys.executable, "-c", CLI_RUNNER, json.dumps([argv]), str(out)], cwd=ROOT, check=True)
    [(code, stderr)] = json.loads(out.read_text())
    assert code == 0, stderr
    with open(sweep / "summary.csv") as f:
        assert sorted(row["job"] for row in csv.DictReader(f)) == ["0/adam", "1/sgd"]
    curves = (sweep / "curves.md").read_text()  # a row per job, labelled by what sets it apart
    assert "| optimizer=adam | 1 |" in curves and "| optimizer=sgd | 1 |" in curves
    assert {p.name for p in sweep.glob("val_*.png")} == {"val_seq_acc.png", "val_char_acc.png", "val_loss.png"}


def _fake_checkpoint(make_cfg, path: Path, **spec_changes) -> Path:
    _, system, _ = build(make_cfg())
    hparams = dict(system.hparams)
    hparams["net_spec"] = {**hparams["net_spec"], **spec_changes}
    torch.save({"hyper_parameters": hparams, "state_dict": system.state_dict()}, path)
    return path


class RunsCode:
    """Unpickling this calls open(marker, 'w'): a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickle_payload_is_refused_not_run(make_cfg, tmp_path, capsys):
    path = _fake_checkpoint(make_cfg, tmp_path / "evil.ckpt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["callbacks"] = RunsCode(tmp_path / "pwned")
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"refused, not a plain-data checkpoint \(.*GLOBAL io.open"):
        load_system(path)
    with pytest.raises(SystemExit) as stopped:  # resuming training from it is refused too
        train(make_cfg(f"ckpt_path={path}"))
    assert stopped.value.code == 2 and "refused, not a plain-data checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()
    torch.load(path, weights_only=False)  # the control: an unsafe load does run the payload
    assert (tmp_path / "pwned").exists()


def test_checkpoint_of_other_charset_or_kind_is_a_clear_error(make_cfg, tmp_path):
    path = _fake_checkpoint(make_cfg, tmp_path / "v2.ckpt")
    assert load_system(path, symbols=CHARSET.symbols, kind="report_cnn").hparams["symbols"] == CHARSET.symbols
    with pytest.raises(
        CheckpointError, match=f"trained on charset '{CHARSET.symbols}', but this run uses '{REPORT36}'"
    ):
        load_system(path, symbols=REPORT36)
    other = _fake_checkpoint(make_cfg, tmp_path / "other.ckpt", kind="vit")  # a kind this version lacks
    with pytest.raises(CheckpointError, match="holds a 'vit' model, but this run uses 'report_cnn'"):
        load_system(other, kind="report_cnn")
    with pytest.raises(CheckpointError, match="cannot rebuild its model .*unknown net kind 'vit'"):
        load_system(other)
    _, system36, _ = build(make_cfg("charset=report36"))
    with pytest.raises(CheckpointError, match="trained on charset"):
        check_resumable(path, system36)


def test_resuming_on_another_split_is_a_clear_error(make_cfg, tmp_path):
    datamodule, system, _ = build(make_cfg())
    path, data = _fake_checkpoint(make_cfg, tmp_path / "run.ckpt"), dict(datamodule.hparams)
    torch.save({**torch.load(path, weights_only=True), "datamodule_hyper_parameters": data}, path)

    def resumable(**changes) -> int:
        return check_resumable(path, system, CaptchaDataModule(**{**data, **changes}))

    assert resumable(batch_size=8, dir=data["dir"] + "/.") == 0  # same split
    for key, value in [("seed", 1), ("val_fraction", 0.3), ("dir", str(tmp_path))]:
        # seed 1 would put most of seed 0's test images into its training split
        with pytest.raises(CheckpointError, match=rf"run.ckpt: trained on another split \(data.{key}=.* there, "):
            resumable(**{key: value})
    assert resumable(num_workers=2) == 0


def test_resuming_after_the_folder_changed_is_a_clear_error(make_cfg, tmp_path, tiny_dir):
    # Same settings, one image fewer: every split reshuffles, and test images would be trained on.
    folder = tmp_path / "captchas"
    shutil.copytree(tiny_dir, folder)
    cfg = make_cfg(f"data.dir={folder}", "data.synthetic=0")
    datamodule, system, _ = build(cfg)
    datamodule.setup("fit")
    path = _fake_checkpoint(make_cfg, tmp_path / "run.ckpt")
    saved = {**torch.load(path, weights_only=True), "datamodule_hyper_parameters": dict(datamodule.hparams)}
    torch.save({**saved, "CaptchaDataModule": datamodule.state_dict()}, path)  # where Lightning puts it
    assert datamodule.state_dict()["images"] == len(list(tiny_dir.glob("*.png")))
    again, _, _ = build(cfg)
    assert check_resumable(path, system, again) == 0 and again.source == datamodule.source  # it reads them
    sorted(folder.glob("*.png"))[3].unlink()
    fewer, _, _ = build(cfg)
    n = datamodule.state_dict()["images"]
    with pytest.raises(
        CheckpointError, match=rf"run.ckpt: its run split {n} usable images of .*, which now holds {n - 1}: "
    ):
        check_resumable(path, system, fewer)


def test_truncated_and_foreign_checkpoints_are_clear_errors(make_cfg, tmp_path):
    whole = _fake_checkpoint(make_cfg, tmp_path / "whole.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(whole[: len(whole) // 2])  # what a non-atomic write killed midway leaves
    with pytest.raises(CheckpointError, match="cut.ckpt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "cut.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a captcha-lab checkpoint"):
        read_checkpoint(tmp_path / "foreign.ckpt")
    image = tmp_path / "2b827.png"  # a captcha passed as ckpt_path by mistake
    cv2.imwrite(str(image), np.full((50, 200), 255, np.uint8))
    with pytest.raises(CheckpointError, match=f"^{image}: not a checkpoint \\(no torch.save file\\)$"):
        read_checkpoint(image)


def test_last_ckpt_follows_every_epoch_even_without_improvement(make_cfg):
    cfg = make_cfg("epochs=2", "lr=1e-9")  # learns nothing: val/seq_acc stays 0, best.ckpt never improves
    train(cfg)
    checkpoints = Path(cfg.hydra.runtime.output_dir) / "checkpoints"
    assert read_checkpoint(checkpoints / "best.ckpt")["epoch"] == 0
    last = read_checkpoint(checkpoints / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 2 * 2)  # resuming loses at most the epoch in progress


def test_an_output_is_replaced_whole_or_not_at_all(tmp_path):
    # summary.csv, metrics.json, predict.py's CSV, a resumed best.ckpt: all go through atomic.
    path = tmp_path / "summary.csv"
    path.write_text("earlier\n")
    with pytest.raises(RuntimeError), atomic.writing(path) as f:
        f.write("half a tab")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "earlier\n" and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
    atomic.write_json(path, {"b": 1, "a": 2})
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n' and [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
