"""What a Reader reads (inference.reader): arrays and PIL images refused or read, never clipped; its batch size."""

import numpy as np
import PIL.Image
import pytest
import torch
from omegaconf import OmegaConf

from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.data.images import ImageError
from captcha_lab.inference.reader import BATCH_SIZE, Reader
from captcha_lab.inference.torch_backend import Predictor
from captcha_lab.models.crnn import CRNN

from ..conftest import ROOT


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """An untrained tiny net: enough to read an image the same way twice."""
    torch.manual_seed(0)
    net = CRNN(num_classes=len(CAPTCHA_V2), channels=(4,), width_halvings=1, hidden=8, context=0, rnn="none")
    return Predictor(net.eval(), CAPTCHA_V2)


@pytest.fixture
def gray() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (50, 200), dtype=np.uint8)


def test_out_of_range_float_arrays_are_refused_not_clipped(predictor, gray):
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


def test_pil_modes_png_cannot_hold_are_read_or_refused_as_image_errors(tmp_path, predictor, gray):
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


def test_predict_yaml_batch_size_is_the_predictors_default():
    # predict.yaml needs the literal (so that `batch_size=64` overrides without a +); the two must not drift.
    assert OmegaConf.load(ROOT / "conf" / "predict.yaml").batch_size == BATCH_SIZE


@pytest.mark.parametrize("one", ["a.png", b"\x89PNG", np.zeros((50, 200), np.uint8)])
def test_one_image_not_in_a_list_is_refused_not_iterated(predictor, one):
    # A path was read letter by letter ("/: cannot be opened"), an (H, W) array row by row.
    with pytest.raises(TypeError, match=r"^predict takes a list of images, got one .*: predict\(\[image\]\)$"):
        predictor.predict(one)
    with pytest.raises(ImageError, match=r"a \(200,\) array is not an \(H, W\)"):
        predictor.predict([np.zeros(200, np.uint8)])  # a row of pixels has no height


def test_ctc_reads_keep_one_symbol_past_the_length_and_confidence_weighs_every_frame():
    best = np.log(np.array([[0.9, 0.5, 0.9]]))
    read = Reader("abc", 2, "ctc").decode(best, np.array([[0, 1, 2]]))[0]
    assert read.text == "abc"  # one symbol too many stays in the read, so it is wrong, not cut to "ab"
    read = Reader("abc", 1, "ctc").decode(best, np.array([[0, 1, 2]]))[0]
    assert read.text == "ab" and len(read.char_confidences) == 2  # cut at length + 1, both alike
    read = Reader("abc", 2, "ctc").decode(best, np.array([[0, 3, 1]]))[0]  # 3: the blank
    assert read.text == "ab" and read.char_confidences == pytest.approx((0.9, 0.9))
    assert read.confidence == pytest.approx(0.9 * 0.5 * 0.9)  # the path's probability, blank frames too
