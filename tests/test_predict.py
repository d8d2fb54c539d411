"""predict.py's refusals: an output that is no CSV or would replace its own inputs, pixels out of range, PIL
modes PNG cannot hold. An untrained tiny net is enough for all of them: no training, a second each."""

import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from omegaconf import OmegaConf

from captcha_lab.charset import CAPTCHA_V2
from captcha_lab.images import ImageError
from captcha_lab.nets import CRNN
from captcha_lab.predict import Predictor
from captcha_lab.predict_pipeline import run


def tiny_net() -> CRNN:
    torch.manual_seed(0)
    return CRNN(num_classes=len(CAPTCHA_V2), channels=(4,), width_halvings=1, hidden=8, context=0, rnn="none").eval()


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """A loadable checkpoint, a folder of two images, and links to both (a symlink, a hard link)."""
    net = tiny_net()
    ckpt = tmp_path / "best.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"hyper_parameters": {"net_spec": net.spec, "symbols": CAPTCHA_V2}, "state_dict": state}, ckpt)
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        PIL.Image.fromarray(rng.integers(0, 256, (50, 200), dtype=np.uint8)).save(images / name)
    (tmp_path / "link.csv").symlink_to(ckpt)
    os.link(images / "a.png", tmp_path / "a.csv")
    os.link(images / "b.png", tmp_path / "hard.csv")
    return {"ckpt": ckpt, "images": images, "image": images / "a.png", "root": tmp_path}


def predict_cfg(files, **keys):
    base = {"ckpt_path": str(files["ckpt"]), "input": str(files["images"]), "batch_size": 4, "device": "cpu"}
    return OmegaConf.create({**base, **keys})


@pytest.mark.parametrize(
    ("input_key", "output", "named"),
    [
        ("images", "best.ckpt", "not a .csv file name"),  # e.g. a run's checkpoint or metrics.json
        ("image", "in/a.png", "not a .csv file name"),
        ("images", "link.csv", "the checkpoint"),  # a symlink to it
        ("image", "a.csv", "the input image"),  # a hard link to the one input file
        ("image", "in/../a.csv", "the input image"),  # by another spelling
        ("images", "hard.csv", "the input image"),  # a hard link to a folder's image
    ],
)
def test_output_that_is_no_csv_or_the_checkpoint_or_an_input_is_refused(files, capsys, input_key, output, named):
    before = {p: p.read_bytes() for p in files["root"].rglob("*") if p.is_file()}
    out = files["root"] / output
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(files, input=str(files[input_key]), output=str(out)))
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and not captured.out  # refused before any image is read
    assert captured.err.startswith(f"error: output: {out} is {named}") and len(captured.err.splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before  # nothing written over


def test_output_over_an_earlier_csv_is_still_written(files, capsys):
    out = files["root"] / "predictions.csv"
    out.write_text("an earlier run's CSV\n")
    assert run(predict_cfg(files, output=str(out))) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "path,text,confidence,error" and len(lines) == 3
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_file_name_that_is_not_utf8_reaches_the_csv_as_its_bytes(files, capsys):
    odd = os.fsdecode(b"2345\xff.png")  # its byte 0xff kept as a surrogate
    (files["images"] / "a.png").rename(files["images"] / odd)
    (files["images"] / os.fsdecode(b"bad\xff.png")).write_bytes(b"not an image")
    out = files["root"] / "predictions.csv"
    out.write_text("an earlier run's CSV\n")
    assert run(predict_cfg(files, output=str(out))) == 1  # the unreadable one
    assert os.fsencode(str(files["images"] / odd)) in out.read_bytes()
    captured = capsys.readouterr()  # the terminal gets the byte escaped: a UTF-8 stream cannot hold it
    assert "2345\\xff.png\t" in captured.out and "bad\\xff.png: not a readable image" in captured.err
    assert not list(files["root"].glob("*.tmp"))  # written aside, then moved over the earlier CSV


def gray_image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (50, 200), dtype=np.uint8)


def test_out_of_range_float_arrays_are_refused_not_clipped():
    predictor, gray = Predictor(tiny_net(), CAPTCHA_V2), gray_image()
    assert predictor.predict([gray / 255.0]) == predictor.predict([gray])  # [0, 1] floats still read
    # np.asarray(img).astype(np.float32): 0..255 floats, which clipping read as a white image.
    with pytest.raises(ImageError, match=r"^a float32 array must hold floats in \[0, 1\], found 0..255$"):
        predictor.predict([gray.astype(np.float32)])
    with pytest.raises(ImageError, match=r"float64 array must hold floats in \[0, 1\], found nan"):
        predictor.predict([np.full((50, 200), np.nan)])
    with pytest.raises(ImageError, match=r"^a int64 array must hold 0..255, found -1..254$"):
        predictor.predict([gray.astype(np.int64) - 1])
    with pytest.raises(ImageError, match=r"^a \(2, 50, 200, 2\) array is not an \(H, W\)"):
        predictor.predict([np.zeros((2, 50, 200, 2), np.uint8)])


def test_pil_modes_png_cannot_hold_are_read_or_refused_as_image_errors(tmp_path):
    predictor, gray = Predictor(tiny_net(), CAPTCHA_V2), gray_image()
    rgb = PIL.Image.fromarray(np.stack([gray, gray[::-1], gray[:, ::-1]], axis=-1))
    # Lossless ways to the same pixels read exactly as the image itself (PIL used to raise OSError).
    assert predictor.predict([rgb.convert("CMYK")]) == predictor.predict([rgb])
    assert predictor.predict([rgb.convert("RGBX")]) == predictor.predict([rgb])
    assert predictor.predict([rgb.convert("YCbCr")])[0].text  # lossy (rounding), but read
    assert predictor.predict([PIL.Image.fromarray(gray).convert("I")]) == predictor.predict([gray])
    assert predictor.predict([PIL.Image.fromarray(gray / np.float32(255))]) == predictor.predict([gray])
    with pytest.raises(ImageError, match=r"^a mode F image must hold floats in \[0, 1\], found"):
        predictor.predict([PIL.Image.fromarray(gray).convert("F")])  # PIL's 0..255: not clipped to white
    with pytest.raises(ImageError, match="^a mode I image must hold 0..255, found 1..256$"):
        predictor.predict([PIL.Image.fromarray(gray.astype(np.int32) + 1)])
    with pytest.raises(ImageError, match=r"^cannot read a mode La PIL image \("):
        predictor.predict([rgb.convert("RGBA").convert("La")])
    PIL.Image.fromarray(gray).save(tmp_path / "x.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "x.png").read_bytes()[:400])
    with pytest.raises(ImageError, match="truncated"):  # PIL decodes lazily: on save, not on open
        predictor.predict([PIL.Image.open(tmp_path / "cut.png")])
