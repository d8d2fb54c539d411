"""Any site's captchas: alphabet, lengths and input size from the folder, recorded in the
checkpoint and its ONNX export, and read back identically by both backends and by eval.py."""

import json

import numpy as np
import PIL.Image
import pytest

from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.inference.onnx_backend import OnnxPredictor
from captcha_lab.inference.torch_backend import Predictor
from captcha_lab.models.checkpoint import read_checkpoint

from .conftest import TINY, run_main

SMALL_CRNN = ["model=crnn", "model.channels=[8,8,8]", "model.hidden=16", "model.context=1"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_dir):
    """The tiny captchas as another site serves them: 96x32 colour JPEGs named label_hash.jpg,
    capitals in the labels (so the alphabet is not captcha_v2's)."""
    folder = tmp_path_factory.mktemp("site") / "site"
    folder.mkdir()
    for i, path in enumerate(sorted(tiny_dir.glob("*.png"))):
        image = PIL.Image.open(path).convert("RGB").resize((96, 32))
        tinted = (np.asarray(image) * np.array([1.0, 0.8, 0.5])).astype(np.uint8)  # colour that grayscale would lose
        PIL.Image.fromarray(tinted).save(folder / f"{path.stem.upper()}_{i:04d}.jpg", quality=90)
    return folder


@pytest.fixture(scope="module")
def site_run(tmp_path_factory, site):
    run = tmp_path_factory.mktemp("site_run") / "run"
    overrides = ["charset=auto", "data.channels=3", "data.height=32", *SMALL_CRNN, f"hydra.run.dir={run}"]
    code, err = run_main("train.py", f"data.dir={site}", *TINY, *overrides)
    assert code == 0, err
    return run


def test_alphabet_size_and_colour_travel_with_checkpoint_and_export(site, site_run):
    ckpt = site_run / "checkpoints" / "best.ckpt"
    hparams = read_checkpoint(ckpt)["hyper_parameters"]
    alphabet = "".join(sorted(set("".join(p.stem.split("_")[0] for p in site.glob("*.jpg")))))
    assert hparams["symbols"] == alphabet and alphabet != CAPTCHA_V2 and any(map(str.isupper, alphabet))
    assert hparams["net_spec"]["image_size"] == [32, 96] and hparams["net_spec"]["in_channels"] == 3
    onnx = OnnxPredictor.from_file(ckpt.with_suffix(".onnx"), checkpoint=ckpt)
    torch_reader = Predictor.from_checkpoint(ckpt)
    assert (onnx.charset.symbols, onnx.image_size, onnx.channels) == (alphabet, (32, 96), 3)
    files = sorted(site.glob("*.jpg"))[:12]
    ours, theirs = list(torch_reader.predict_files(files)), list(onnx.predict_files(files))
    assert [p.text for _, p in ours] == [p.text for _, p in theirs]
    assert [p.confidence for _, p in ours] == pytest.approx([p.confidence for _, p in theirs], rel=1e-4)
    assert all(len(p.char_confidences) == len(p.text) for _, p in theirs)


def test_predict_and_eval_need_no_charset(site, site_run, tmp_path):
    code, err = run_main("predict.py", f"ckpt_path={site_run}/checkpoints/best.ckpt", f"input={site}")
    assert code == 0, err
    code, err = run_main("eval.py", f"ckpt_path={site_run}/checkpoints/best.ckpt", f"hydra.run.dir={tmp_path / 'eval'}")
    assert code == 0, err
    results = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert 0 <= results["val/seq_acc"] <= 1 and "val/char_acc" in results


def test_test_labels_the_model_cannot_write_are_misreads(site, site_run, tmp_path):
    # A test folder whose labels hold a symbol the training labels never had: scored, not skipped.
    other = tmp_path / "other"
    other.mkdir()
    for i, path in enumerate(sorted(site.glob("*.jpg"))[:6]):
        label = path.stem.split("_")[0]
        (other / f"{label if i % 2 else label[:-1] + '!'}_{i}.jpg").write_bytes(path.read_bytes())
    code, err = run_main(
        "eval.py",
        f"ckpt_path={site_run}/checkpoints/best.ckpt",
        f"data.test_dir={other}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert code == 0, err
    results = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert results["test/seq_acc"] <= 0.5  # 3 of the 6 can never be read right
    log = "".join(f.read_text() for f in (tmp_path / "eval").glob("*.log"))
    assert "3 label(s) hold symbols the model cannot write, scored as misreads" in log
