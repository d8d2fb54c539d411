"""eval.py, predict.py and the plots, on a tiny checkpoint trained once per session."""

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from captcha_lab.charset import CAPTCHA_V2
from captcha_lab.checkpoint import read_checkpoint
from captcha_lab.errors import DataError
from captcha_lab.evaluate import MISSING, char_scores, confusion_figure, confusion_labels, write_char_csvs
from captcha_lab.images import ImageError, read_gray
from captcha_lab.nets import ReportCNN
from captcha_lab.pipeline import train
from captcha_lab.plots import _plot, job_labels, plot_run, plot_sweep, read_history, replot
from captcha_lab.predict import Predictor
from captcha_lab.predict_pipeline import run
from captcha_lab.reading import BATCH_SIZE, InputError, expand_inputs
from captcha_lab.system import CaptchaSystem, load_system

from .conftest import QUIET, ROOT, run_script


@pytest.fixture(scope="session")
def tiny_eval(tmp_path_factory, tiny_run) -> Path:
    out = tmp_path_factory.mktemp("tiny_eval") / "eval"
    done = run_script("eval.py", f"ckpt_path={tiny_run / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={out}")
    assert done.returncode == 0, done.stderr
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
        done = run_script("eval.py", ckpt, f"hydra.run.dir={out}")
        assert done.returncode == 2
        assert done.stderr.strip() == f"error: hydra.run.dir: {out} already holds a run ({held}); choose another"
    assert (tiny_run / ".hydra" / "config.yaml").read_bytes() == config


def test_eval_separate_test_dir(tmp_path, tiny_run, tiny_dir):
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    for p in sorted(tiny_dir.glob("*.png"))[:6]:
        shutil.copy(p, test_dir)
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    done = run_script("eval.py", f"ckpt_path={ckpt}", f"data.test_dir={test_dir}", f"hydra.run.dir={tmp_path / 'e'}")
    assert done.returncode == 0, done.stderr
    # The run's own train/val (58/14 of the 80, its 8 test images held out), not the folder split anew.
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["sizes"] == {"train": 58, "val": 14, "test": 6}


@pytest.mark.slow
def test_eval_of_variable_length_crnn_keeps_its_split(tmp_path, mixed_length_dir):
    # eval used to force the data's length to the net's longest (6): 4- and 5-character captchas
    # were skipped and the split changed, putting training images into "test".
    run, tiny_crnn = tmp_path / "run", ["model=crnn", "model.channels=[8,8,8]", "model.hidden=8"]
    data = [f"data.dir={mixed_length_dir}", "data.length=4", "data.max_length=6"]
    done = run_script("train.py", *tiny_crnn, *data, "data.synthetic=0", "epochs=1", f"hydra.run.dir={run}", *QUIET)
    assert done.returncode == 0, done.stderr
    ckpt = run / "checkpoints" / "last.ckpt"
    done = run_script("eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'e'}")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["sizes"] == {"train": 34, "val": 9, "test": 5}
    # data=... is fitted to the net: labels of data.length (4) up to the net's 6 characters.
    again = [f"ckpt_path={ckpt}", "data=captcha_v2", f"data.dir={mixed_length_dir}", "data.length=4"]
    done = run_script("eval.py", *again, f"hydra.run.dir={tmp_path / 'e2'}")
    assert done.returncode == 0, done.stderr
    assert sum(json.loads((tmp_path / "e2" / "eval.json").read_text())["sizes"].values()) == 48


def test_eval_sweep_names_its_failed_job(tmp_path, tiny_run):
    good = tiny_run / "checkpoints" / "best.ckpt"
    sweep = tmp_path / "sweep"
    done = run_script("eval.py", "-m", f"ckpt_path={tmp_path}/none.ckpt,{good}", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 2  # not 0: the first job failed ...
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: 1 sweep job(s) failed (0); the first: ckpt_path: no checkpoint file at {tmp_path}/none.ckpt"
    )
    assert (sweep / "1" / "eval.json").is_file()  # ... and the second still ran


def test_eval_refuses_what_it_cannot_honour(tmp_path, tiny_run):
    lone = tmp_path / "best.ckpt"  # no .hydra/config.yaml two levels up
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", lone)
    done = run_script("eval.py", f"ckpt_path={lone}", f"hydra.run.dir={tmp_path / 'e'}")
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: ckpt_path: {lone} is not in a run dir's checkpoints/ (no /")
    assert "data=captcha_v2" in done.stderr
    # A charset other than the checkpoint's was silently ignored.
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    done = run_script("eval.py", f"ckpt_path={ckpt}", "charset=report36", f"hydra.run.dir={tmp_path / 'e2'}")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {ckpt}: trained on charset '2345678bcdefgmnpwxy', but this run uses " + (
        "'abcdefghijklmnopqrstuvwxyz0123456789'"
    )
    # seed= was silently ignored with the run's own data config; data.seed= splits anew, and says so.
    done = run_script("eval.py", f"ckpt_path={ckpt}", "seed=3", f"hydra.run.dir={tmp_path / 'e4'}")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "error: seed=3: the run's own data config keeps its seed; data.seed=3 splits its folder anew, "
        "or data=... names another data config",
    )
    done = run_script("eval.py", f"ckpt_path={ckpt}", "data.seed=3", f"hydra.run.dir={tmp_path / 'e5'}")
    assert done.returncode == 0, done.stderr
    assert "data.seed=3: the run's images are split anew, so test may hold some it trained on" in done.stdout
    # A `+key=` that eval.yaml lacks (Hydra adds it) was silently ignored.
    done = run_script("eval.py", f"ckpt_path={ckpt}", "+data_dir=x", f"hydra.run.dir={tmp_path / 'e3'}")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "error: data_dir: no such key (+data_dir= adds one that nothing reads); the keys: ckpt_path, batch_size, seed, "
        "charset, data",
    )


def test_eval_refuses_a_run_whose_folder_changed(tmp_path, tiny_run, tiny_dir):
    # The run's split settings with one image fewer split every image anew: "test" would hold
    # images it trained on.
    assert read_checkpoint(tiny_run / "checkpoints" / "best.ckpt")["CaptchaDataModule"]["images"] == 80
    run, folder = tmp_path / "run", tmp_path / "captchas"
    shutil.copytree(tiny_dir, folder)
    args = [f"data.dir={folder}", "data.synthetic=0", "epochs=1", f"hydra.run.dir={run}", *QUIET]
    trained = run_script("train.py", *args)
    assert trained.returncode == 0, trained.stderr
    ckpt = run / "checkpoints" / "best.ckpt"
    assert run_script("eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'e1'}").returncode == 0
    sorted(folder.glob("*.png"))[0].unlink()
    done = run_script("eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'e2'}")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"error: {ckpt}: its run split 80 usable images of {folder}, which now holds 79: its split cannot be drawn "
        "again; restore the folder, or score another one with data.test_dir=DIR",
    )
    # data.batch_size changes no split: still refused (any data.* override used to skip the check).
    done = run_script("eval.py", f"ckpt_path={ckpt}", "data.batch_size=8", f"hydra.run.dir={tmp_path / 'e3'}")
    assert done.returncode == 2 and "its split cannot be drawn again" in done.stderr
    # Its own folder as the test split would score the images it trained on.
    done = run_script("eval.py", f"ckpt_path={ckpt}", f"data.test_dir={folder}", f"hydra.run.dir={tmp_path / 'e4'}")
    refused = f"error: data.test_dir: {folder} is the folder the run trained on: test would hold those"
    assert (done.returncode, done.stderr.strip()) == (2, refused)
    other = run_script("eval.py", f"ckpt_path={ckpt}", f"data.test_dir={tiny_dir}", f"hydra.run.dir={tmp_path / 'e5'}")
    assert other.returncode == 0, other.stderr
    assert "which now holds 79: train and val are split anew" in other.stdout


def test_loaded_system_keeps_its_label_smoothing(tmp_path):
    # eval's test/loss must be the loss the run reported in metrics.json.
    system = CaptchaSystem(ReportCNN(19), CAPTCHA_V2, label_smoothing=0.1)
    path = tmp_path / "smooth.ckpt"
    torch.save({"hyper_parameters": dict(system.hparams), "state_dict": system.state_dict()}, path)
    assert load_system(path).hparams.label_smoothing == 0.1


def test_char_scores_when_every_read_is_too_short():
    rows, confusion = char_scores("abc", ["abc", "cab"], ["ab", ""], missing=True)
    assert confusion.shape == (4, 4) and confusion[:, 3].sum() == 4  # c, then c, a, b read as nothing
    assert [r["support"] for r in rows] == [2, 2, 2] and [r["recall"] for r in rows] == [0.5, 0.5, 0]


def test_predict_cli_bad_file_and_exit_code(tmp_path, tiny_run, tiny_dir):
    images = tmp_path / "in"
    shutil.copytree(tiny_dir, images)
    (images / "broken.png").write_bytes(b"not an image")
    out_csv = tmp_path / "pred.csv"
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    # batch_size=16: the broken file and the good ones spread over several batches.
    done = run_script("predict.py", f"ckpt_path={ckpt}", f"input={images}", f"output={out_csv}", "batch_size=16")
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in done.stderr
    lines = [line.split("\t") for line in done.stdout.strip().splitlines()]
    good = sorted(p for p in images.glob("*.png") if p.name != "broken.png")
    assert [Path(p) for p, _, _ in lines] == good  # input order, every readable file
    assert all(len(t) == 5 and 0 <= float(c) <= 1 for _, t, c in lines)
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(good) + 1 and [r["path"] for r in rows if r["error"]] == [str(images / "broken.png")]

    predictor = Predictor.from_checkpoint(ckpt)
    assert [p.text for p in predictor.predict(good)] == [t for _, t, _ in lines]


def test_predict_single_file_and_no_match(tmp_path, tiny_run, tiny_dir, capsys):
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    cfg = OmegaConf.create({"ckpt_path": str(ckpt), "batch_size": 4, "device": "cpu", "output": None})
    one = sorted(tiny_dir.glob("*.png"))[0]
    assert run(OmegaConf.merge(cfg, {"input": str(one)})) == 0
    assert capsys.readouterr().out.startswith(f"{one}\t")
    with pytest.raises(SystemExit) as exit_info:
        run(OmegaConf.merge(cfg, {"input": str(tmp_path / "nothing*.png")}))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: input: no file, folder or glob match")
    with pytest.raises(SystemExit):
        run(OmegaConf.merge(cfg, {"input": "???"}))
    assert capsys.readouterr().err.startswith("error: input is required")
    bad_values = [
        ({"input": ""}, "error: input is required"),  # `input=`: not the current folder
        ({"ckpt_path": str(tmp_path / "none.ckpt")}, f"error: ckpt_path: no checkpoint file at {tmp_path}/none.ckpt"),
        ({"inputs": "x.png"}, "error: inputs: no such key (+inputs= adds one that nothing reads); the keys: ckpt_"),
        ({"batch_size": "abc"}, "error: batch_size: Value 'abc'"),
        ({"batch_size": 0}, "error: batch_size must be at least 1"),
        ({"device": "gpu"}, "error: device: 'gpu' is not usable here (Expected one of cpu"),  # not the checkpoint's
        ({"device": "mps"}, "error: device: 'mps' is not usable here"),
        ({"output": str(tmp_path / "no" / "x.csv")}, "error: output: cannot write a CSV file at"),  # before reading
    ]
    for bad, message in bad_values:
        with pytest.raises(SystemExit):
            run(OmegaConf.merge(cfg, {"input": str(one), **bad}))
        captured = capsys.readouterr()
        assert captured.err.startswith(message) and not captured.out


def test_predict_reads_a_few_images_without_starting_the_kernel(tiny_run, tiny_dir):
    # numba's import and start-up (~0.7 s) would be a quarter of predict.py on one image.
    ckpt, images = tiny_run / "checkpoints" / "best.ckpt", sorted(tiny_dir.glob("*.png"))
    one = images[0]
    cfg = {"ckpt_path": str(ckpt), "input": str(one), "output": None, "batch_size": 4, "backend": "torch"}
    code = (
        "import sys; from omegaconf import OmegaConf; from captcha_lab.predict_pipeline import run\n"
        f"run(OmegaConf.create({cfg!r}))\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line, numba_loaded = out.splitlines()
    assert numba_loaded == "False"
    with_kernel, without = Predictor.from_checkpoint(ckpt), Predictor.from_checkpoint(ckpt, kernel=False)
    assert with_kernel.net.fused and not without.net.fused
    reads, reads_without = with_kernel.predict(images), without.predict(images)
    assert [p.text for p in reads_without] == [p.text for p in reads]
    assert [p.confidence for p in reads_without] == pytest.approx([p.confidence for p in reads], rel=1e-4)
    assert line.split("\t")[:2] == [str(one), reads[0].text]


def test_predictor_accepts_paths_arrays_and_pil(tiny_run, tiny_dir):
    predictor = Predictor.from_checkpoint(tiny_run / "checkpoints" / "best.ckpt", batch_size=2)
    path = sorted(tiny_dir.glob("*.png"))[0]
    gray = read_gray(path)  # (50, 200) uint8
    rgb = np.array(PIL.Image.open(path).convert("RGB"))  # (50, 200, 3)
    big = PIL.Image.open(path).convert("RGBA").resize((400, 100))
    as_int = gray.astype(np.int64)  # e.g. numpy arithmetic: integers 0..255, not [0, 1]
    ways = [path, str(path), gray, gray / 255.0, rgb, PIL.Image.open(path), as_int, gray.astype(np.uint16)]
    preds = predictor.predict(ways)  # 4 batches of 2: a batch of 1 may differ in the last bits
    assert len({p for p in preds}) == 1  # one image, eight ways: same text, same confidence
    with pytest.raises(ImageError, match="int64 array must hold 0..255"):
        predictor.predict([as_int * 4])
    assert len(predictor.predict([big])[0].text) == 5


def test_expand_inputs_order_and_errors(tmp_path, tiny_dir):
    files = sorted(tiny_dir.glob("*.png"))
    assert expand_inputs(str(tiny_dir)) == files
    assert expand_inputs(str(tiny_dir / "2*.png")) == [p for p in files if p.name.startswith("2")]
    with pytest.raises(InputError, match="no image files"):
        expand_inputs(str(tmp_path))
    with pytest.raises(InputError, match="no file, folder or glob match"):
        expand_inputs(str(tmp_path / "missing.png"))


def test_run_and_sweep_plots(tiny_run, tmp_path):
    for png in ("loss.png", "accuracy.png"):
        assert (tiny_run / png).stat().st_size > 5000
    history = read_history(tiny_run)
    assert sorted(history["train/loss"]) == sorted(history["val/seq_acc"]) == [1, 2, 3]
    assert sorted(history["train/char_acc"]) == [1, 2, 3]

    sweep = tmp_path / "sweep"
    for job in ("0_a", "1_b"):
        shutil.copytree(tiny_run, sweep / job, ignore=shutil.ignore_patterns("checkpoints"))
    labels = job_labels({"0_a": "optimizer=adam epochs=3", "1_b": "optimizer=sgd epochs=3"})
    assert labels == {"0_a": "optimizer=adam", "1_b": "optimizer=sgd"}
    written = plot_sweep(sweep, labels)
    assert [p.name for p in written] == ["val_seq_acc.png", "val_char_acc.png", "val_loss.png"]
    assert all(p.stat().st_size > 5000 for p in written)
    assert plot_run(tmp_path / "empty_run_dir_without_events") == []
    assert [p.name for p in replot(str(tiny_run))] == ["loss.png", "accuracy.png"]
    assert {p.name for p in replot(str(sweep))} == {"val_seq_acc.png", "val_char_acc.png", "val_loss.png"}
    (tmp_path / "no_run").mkdir()
    for folder, message in [(tmp_path / "nope", "not a folder"), (tmp_path / "no_run", "holds neither a run")]:
        with pytest.raises(DataError, match=f"^{folder}: {message}"):
            replot(str(folder))
    assert not list((tmp_path / "no_run").iterdir())  # no empty summaries written into it


def test_epoch_axis_ticks_are_whole_epochs(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure _plot draws
    _plot(tmp_path / "loss.png", "loss", "loss", {"train": {1: 0.5, 2: 0.4, 3: 0.3}})
    ticks = figures[0].axes[0].get_xticks()
    assert len(ticks) and all(t == int(t) for t in ticks), ticks  # not 1.25, 1.5, ...


def test_diverging_run_scores_finite(make_cfg, tmp_path):
    # A sweep's optimizer (optuna) needs a finite score. A diverged net still reads some class
    # (argmax of NaN logits), so its val/seq_acc is 0, never NaN; the best is NaN when no
    # validation ran during fit, as here.
    cfg = make_cfg("optimizer=sgd", "lr=1e8", "+trainer.limit_val_batches=0")
    assert train(cfg) == 0.0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert math.isnan(metrics["val/seq_acc_best"])  # what train() would return without finite_score


@pytest.mark.parametrize(
    "module, heavies",
    [
        ("captcha_lab.predict", ("lightning", "torchvision", "torchmetrics", "hydra", "numba")),
        ("captcha_lab.predict_pipeline", ("torch", "lightning", "numba")),  # torch only for backend=torch
    ],
)
def test_predict_path_imports_neither_lightning_nor_torchvision(module, heavies):
    # Each costs seconds of predict.py's start-up (issue 5: one image in <= 3 s); numba, ~0.7 s, is
    # imported only when the report net's CPU kernel first runs.
    code = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'captcha_lab'" in loaded
    for heavy in heavies:
        assert f"'{heavy}'" not in loaded


def test_predict_yaml_batch_size_is_the_predictors_default():
    # predict.yaml needs the literal (so that `batch_size=64` overrides without a +); the two must not drift.
    assert OmegaConf.load(ROOT / "conf" / "predict.yaml").batch_size == BATCH_SIZE


def test_char_scores_count_reads_of_another_length():
    # CTC reads may end early or run on; every label character must still be scored.
    truths = ["abc", "abc", "bca", "cab"]
    preds = ["ab", "abc", "bcaa", "cbb"]  # too short, right, too long, a misread
    rows, confusion = char_scores("abc", truths, preds, missing=True)
    assert [r["support"] for r in rows] == [4, 4, 4]  # every label character: 12, not 6
    # (4, 4): rows = truth a, b, c, MISSING; the last read's a -> b, the first's absent c, the third's extra a.
    assert confusion.tolist() == [[3, 1, 0, 0], [0, 4, 0, 0], [0, 0, 3, 1], [1, 0, 0, 0]]
    assert [(r["precision"], r["recall"]) for r in rows] == [(0.75, 0.75), (0.8, 1.0), (1.0, 0.75)]
    # Position by position, as the system's char_acc: right label characters / label characters.
    assert float(confusion.trace()) / sum(r["support"] for r in rows) == pytest.approx(10 / 12)
    labels = confusion_labels("abc", missing=True)
    assert labels == ["a", "b", "c", MISSING] and MISSING not in CAPTCHA_V2

    # Fixed heads (no length errors) keep their (C, C) matrix: the same numbers without MISSING.
    fixed, fixed_confusion = char_scores("abc", ["abc", "cab"], ["abc", "cbb"], missing=False)
    with_missing, confusion = char_scores("abc", ["abc", "cab"], ["abc", "cbb"], missing=True)
    assert fixed == with_missing and fixed_confusion.tolist() == confusion[:3, :3].tolist()
    assert confusion[3].sum() == confusion[:, 3].sum() == 0
    with pytest.raises(ValueError, match="need missing=True"):  # not silently dropped, as they were
        char_scores("abc", truths, preds, missing=False)


def test_missing_class_is_labelled_in_csv_and_figure(tmp_path):
    rows, confusion = char_scores("abc", ["abc"], ["ab"], missing=True)
    labels = confusion_labels("abc", missing=True)
    write_char_csvs(tmp_path, labels, rows, confusion)
    with open(tmp_path / "confusion_matrix.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["true\\pred", "a", "b", "c", MISSING]
    assert [row[0] for row in table[1:]] == labels and table[3][1:] == ["0", "0", "0", "1"]  # c read as nothing
    fig = confusion_figure(labels, confusion, "test")
    axes = fig.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == [t.get_text() for t in axes.get_yticklabels()] == labels
    plt.close(fig)
