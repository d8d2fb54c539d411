"""eval.py (cli.evaluate): its outputs, the split it scores, and what it refuses. In this process (eval.py's
hydra.main, or its job on a composed config) but for one sweep."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from captcha_lab.analysis.evaluate import MISSING
from captcha_lab.cli.evaluate import evaluate, run_datamodule
from captcha_lab.cli.train import train
from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.inference.onnx_backend import OnnxPredictor
from captcha_lab.models.checkpoint import read_checkpoint
from captcha_lab.models.report_cnn import ReportCNN
from captcha_lab.training.resume import images_changed, split_changes
from captcha_lab.training.system import CaptchaSystem, load_system

from ..conftest import ROOT, run_script
from .conftest import run_main


def eval_job(out_dir: Path, *overrides: str) -> dict:
    """eval's job on conf/eval.yaml composed with `overrides` (the command line's keys, which it reads), in out_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.job.num = 0
        cfg.hydra.overrides.task = list(overrides)  # what cli.jobs.override_keys() reads
    out_dir.mkdir(parents=True, exist_ok=True)
    HydraConfig.instance().set_config(cfg)
    return evaluate(cfg)


def train_run(make_cfg_in, run: Path, *overrides: str) -> Path:
    """A 1-epoch run trained in process, with the .hydra/config.yaml that Hydra writes (eval reads its data)."""
    cfg = make_cfg_in(run, "~logger", *overrides)
    train(cfg)
    task = cfg.copy()
    with open_dict(task):
        del task["hydra"]
    (run / ".hydra").mkdir()
    OmegaConf.save(task, run / ".hydra" / "config.yaml")
    return run


def refusal(capsys, out_dir: Path, *overrides: str) -> tuple[int, str]:
    """eval's exit status and its one line on stderr."""
    with pytest.raises(SystemExit) as stopped:
        eval_job(out_dir, *overrides)
    return stopped.value.code, capsys.readouterr().err.strip()


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory, tiny_run) -> Path:
    out = tmp_path_factory.mktemp("tiny_eval") / "eval"
    code, err = run_main("eval.py", f"ckpt_path={tiny_run / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={out}")
    assert code == 0, err
    return out


def test_eval_metrics_agree(tiny_eval, tiny_run):
    results = json.loads((tiny_eval / "eval.json").read_text())
    assert results["sizes"] == {"train": 58, "val": 14, "test": 8}  # the training run's split
    trained = json.loads((tiny_run / "metrics.json").read_text())
    assert results["test/seq_acc"] == pytest.approx(trained["test/seq_acc"])
    assert results["test/char_acc"] == pytest.approx(trained["test/char_acc"])
    for split in ("train", "val", "test"):
        assert {f"{split}/{k}" for k in ("loss", "char_acc", "seq_acc", "acc_pos1", "acc_pos5")} <= results.keys()
        positions = [results[f"{split}/acc_pos{i}"] for i in range(1, 6)]
        assert np.mean(positions) == pytest.approx(results[f"{split}/char_acc"], abs=1e-6)

    confusion = np.array(results["confusion_matrix"])
    n_test = results["sizes"]["test"]
    assert confusion.shape == (19, 19) and confusion.sum() == n_test * 5
    assert np.trace(confusion) / confusion.sum() == pytest.approx(results["test/char_acc"], abs=1e-6)
    assert 1 - len(results["misread"]) / n_test == pytest.approx(results["test/seq_acc"], abs=1e-6)
    assert sum(r["support"] for r in results["per_char"]) == n_test * 5
    for row in results["per_char"]:
        p, r = row["precision"], row["recall"]
        assert row["f1"] == pytest.approx(0 if p + r == 0 else 2 * p * r / (p + r), abs=2e-4)

    with open(tiny_eval / "confusion_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert sum(int(v) for row in rows[1:] for v in row[1:]) == n_test * 5
    for png in ("confusion_matrix.png", "misread.png"):
        assert (tiny_eval / png).stat().st_size > 1000
    (events,) = tiny_eval.glob("events.out.tfevents.*")  # TensorBoard has the same numbers and figures
    tb = EventAccumulator(str(events))
    tb.Reload()
    assert tb.Scalars("test/char_acc")[0].value == pytest.approx(results["test/char_acc"])
    assert {"test/confusion_matrix", "test/misread"} <= set(tb.Tags()["images"])


def test_eval_into_a_dir_holding_a_run_is_refused(tiny_eval, tiny_run):
    ckpt = f"ckpt_path={tiny_run / 'checkpoints' / 'best.ckpt'}"
    config = (tiny_run / ".hydra" / "config.yaml").read_bytes()
    # An eval dir reused, and the training run's own dir (its config would be replaced by eval's,
    # although ckpt_path lies inside it: for eval that is what it scores, not a resume).
    for out, held in [(tiny_eval, "eval.json"), (tiny_run, "checkpoints/best.ckpt")]:
        code, err = run_main("eval.py", ckpt, f"hydra.run.dir={out}")
        assert (code, err.strip()) == (2, f"error: hydra.run.dir: {out} already holds a run ({held}); choose another")
    assert (tiny_run / ".hydra" / "config.yaml").read_bytes() == config


def test_eval_separate_test_dir(tmp_path, tiny_run, tiny_dir):
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    images = sorted(tiny_dir.glob("*.png"))
    for p in images[:6]:
        shutil.copy(p, test_dir)
    # A label one symbol short: the 5-head net reads 5, so it is a misread, not an error.
    short, long = images[6].stem[:4], images[7].stem + "x"  # and one a symbol longer: kept whole
    shutil.copy(images[6], test_dir / f"{short}.png")
    shutil.copy(images[7], test_dir / f"{long}.png")
    eval_job(tmp_path / "e", f"ckpt_path={tiny_run / 'checkpoints' / 'best.ckpt'}", f"data.test_dir={test_dir}")
    result = json.loads((tmp_path / "e" / "eval.json").read_text())
    # The run's own train/val (58/14 of the 80, its 8 test images held out), not the folder split anew.
    assert result["sizes"] == {"train": 58, "val": 14, "test": 8}
    assert {short, long} <= {m["true"] for m in result["misread"]}
    assert result["confusion_labels"][-1] == MISSING


@pytest.mark.slow
def test_eval_of_variable_length_crnn_keeps_its_split(tmp_path, mixed_length_dir, make_cfg_in):
    # eval used to force the data's length to the net's longest (6): 4- and 5-character captchas
    # were skipped and the split changed, putting training images into "test".
    tiny_crnn = ["model=crnn", "model.channels=[8,8,8]", "model.hidden=8", "model.rnn=none"]  # no LSTM: faster
    data = [f"data.dir={mixed_length_dir}", "data.length=4", "data.max_length=6"]
    ckpt = train_run(make_cfg_in, tmp_path / "run", *tiny_crnn, *data) / "checkpoints" / "last.ckpt"
    # The shortest label is the net's min_length, and its export's: reads of 4 to 6 characters.
    assert OnnxPredictor.from_file(ckpt.with_name("best.onnx")).read_lengths == (4, 6)
    eval_job(tmp_path / "e", f"ckpt_path={ckpt}")
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["sizes"] == {"train": 34, "val": 9, "test": 5}
    # data=... is fitted to the net: labels of data.length (4) up to the net's 6 characters.
    eval_job(tmp_path / "e2", f"ckpt_path={ckpt}", "data=captcha_v2", f"data.dir={mixed_length_dir}", "data.length=4")
    assert sum(json.loads((tmp_path / "e2" / "eval.json").read_text())["sizes"].values()) == 48


@pytest.mark.slow
def test_eval_sweep_names_its_failed_job(tmp_path, tiny_run):
    # eval.py -m as a user runs it: a job's user error goes to its error.txt, Hydra's FailedJobs names it.
    good = tiny_run / "checkpoints" / "best.ckpt"
    sweep = tmp_path / "sweep"
    done = run_script("eval.py", "-m", f"ckpt_path={tmp_path}/none.ckpt,{good}", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 2  # not 0: the first job failed ...
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: 1 sweep job(s) failed (0); the first: ckpt_path: no checkpoint file at {tmp_path}/none.ckpt"
    )
    assert (sweep / "1" / "eval.json").is_file()  # ... and the second still ran


def test_eval_refuses_what_it_cannot_honour(tmp_path, tiny_run, capsys, caplog):
    lone = tmp_path / "best.ckpt"  # no .hydra/config.yaml two levels up
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", lone)
    code, err = refusal(capsys, tmp_path / "e", f"ckpt_path={lone}")
    assert code == 2
    assert err.startswith(f"error: ckpt_path: {lone} is not in a run dir's checkpoints/ (no /")
    assert "data=captcha_v2" in err
    # A charset other than the checkpoint's was silently ignored.
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    assert refusal(capsys, tmp_path / "e2", f"ckpt_path={ckpt}", "charset=report36") == (
        2,
        f"error: {ckpt}: trained on charset '2345678bcdefgmnpwxy', but this run uses "
        "'abcdefghijklmnopqrstuvwxyz0123456789'",
    )
    # seed= was silently ignored with the run's own data config; data.seed= splits anew, and says so.
    assert refusal(capsys, tmp_path / "e4", f"ckpt_path={ckpt}", "seed=3") == (
        2,
        "error: seed=3: the run's own data config keeps its seed; data.seed=3 splits its folder anew, "
        "or data=... names another data config",
    )
    eval_job(tmp_path / "e5", f"ckpt_path={ckpt}", "data.seed=3")
    assert "data.seed=3: the run's images are split anew, so test may hold some it trained on" in caplog.text
    # A `+key=` that eval.yaml lacks (Hydra adds it) was silently ignored.
    assert refusal(capsys, tmp_path / "e3", f"ckpt_path={ckpt}", "+data_dir=x") == (
        2,
        "error: data_dir: no such key (+data_dir= adds one that nothing reads); the keys: ckpt_path, batch_size, seed, "
        "charset, data",
    )


@pytest.mark.slow
def test_eval_refuses_a_run_whose_folder_changed(tmp_path, tiny_run, tiny_dir, make_cfg_in, capsys, caplog):
    # The run's split settings with one image fewer split every image anew: "test" would hold
    # images it trained on.
    assert read_checkpoint(tiny_run / "checkpoints" / "best.ckpt")["CaptchaDataModule"]["images"] == 80
    folder = tmp_path / "captchas"
    shutil.copytree(tiny_dir, folder)
    ckpt = train_run(make_cfg_in, tmp_path / "run", f"data.dir={folder}") / "checkpoints" / "best.ckpt"
    eval_job(tmp_path / "e1", f"ckpt_path={ckpt}")
    sorted(folder.glob("*.png"))[0].unlink()
    assert refusal(capsys, tmp_path / "e2", f"ckpt_path={ckpt}") == (
        2,
        f"error: {ckpt}: its run split 80 usable images of {folder}, which now holds 79: its split cannot be drawn "
        "again; restore the folder, or score another one with data.test_dir=DIR",
    )
    # data.batch_size changes no split: still refused (any data.* override used to skip the check).
    code, err = refusal(capsys, tmp_path / "e3", f"ckpt_path={ckpt}", "data.batch_size=8")
    assert code == 2 and "its split cannot be drawn again" in err
    # Its own folder as the test split would score the images it trained on.
    refused = f"error: data.test_dir: {folder} is the folder the run trained on: test would hold those"
    assert refusal(capsys, tmp_path / "e4", f"ckpt_path={ckpt}", f"data.test_dir={folder}") == (2, refused)
    eval_job(tmp_path / "e5", f"ckpt_path={ckpt}", f"data.test_dir={tiny_dir}")
    assert "which now holds 79: train and val are split anew" in caplog.text


def test_loaded_system_keeps_its_label_smoothing(tmp_path):
    # eval's test/loss must be the loss the run reported in metrics.json.
    system = CaptchaSystem(ReportCNN(19), CAPTCHA_V2, label_smoothing=0.1)
    path = tmp_path / "smooth.ckpt"
    torch.save({"hyper_parameters": dict(system.hparams), "state_dict": system.state_dict()}, path)
    assert load_system(path).hparams.label_smoothing == 0.1


def test_run_datamodule_splits_as_the_run_did(tiny_run):
    ckpt = read_checkpoint(tiny_run / "checkpoints" / "last.ckpt")
    module = run_datamodule(tiny_run)
    assert split_changes(ckpt, dict(module.hparams)) == []  # seed, fractions, folder: the run's
    assert images_changed(tiny_run, ckpt, module) is None  # and the same images in the folder
    assert module.charset.symbols == ckpt["hyper_parameters"]["symbols"]
    assert run_datamodule(tiny_run, seed=1).hparams.seed == 1  # overrides on top


def test_eval_refuses_another_input_size_and_a_damaged_run_config(tmp_path, tiny_run, capsys):
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    # A shape error at the first batch, or a CRNN scored at a width it never trained at.
    for key in ("data.height=10", "data.width=64", "data.channels=3"):
        code, err = refusal(capsys, tmp_path / key, f"ckpt_path={ckpt}", key)
        assert (code, err) == (2, f"error: {key.split('=')[0]}: the net reads 50x200 images with 1 channel(s), as "
                                  "it trained; eval prepares every image so: drop it")  # fmt: skip
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, run / "checkpoints")
    (run / ".hydra").mkdir()
    for text in ("", "data: [", "model: {}\n"):
        (run / ".hydra" / "config.yaml").write_text(text)
        code, err = refusal(capsys, tmp_path / f"e{len(text)}", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}")
        assert code == 2 and err.startswith(f"error: {run / '.hydra' / 'config.yaml'}: not a run's config"), err
