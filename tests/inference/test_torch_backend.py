"""The PyTorch reader (inference.torch_backend.Predictor) of a trained checkpoint: inputs of every kind, with or
without the net's CPU kernels."""

import numpy as np
import PIL.Image
import pytest
import torch

from captcha_lab.data.charset import Charset
from captcha_lab.data.images import ImageError, read_image
from captcha_lab.inference.torch_backend import Predictor
from captcha_lab.models.crnn import CRNN
from captcha_lab.models.report_cnn import ReportCNN


def test_predictor_accepts_paths_arrays_and_pil(tiny_run, tiny_dir):
    predictor = Predictor.from_checkpoint(tiny_run / "checkpoints" / "best.ckpt", batch_size=2)
    path = sorted(tiny_dir.glob("*.png"))[0]
    gray = read_image(path)  # (50, 200) uint8
    rgb = np.array(PIL.Image.open(path).convert("RGB"))  # (50, 200, 3)
    big = PIL.Image.open(path).convert("RGBA").resize((400, 100))
    as_int = gray.astype(np.int64)  # e.g. numpy arithmetic: integers 0..255, not [0, 1]
    ways = [path, str(path), gray, gray / 255.0, rgb, PIL.Image.open(path), as_int, gray.astype(np.uint16)]
    preds = predictor.predict(ways)  # 4 batches of 2: a batch of 1 may differ in the last bits
    assert len({p for p in preds}) == 1  # one image, eight ways: same text, same confidence
    with pytest.raises(ImageError, match="int64 array must hold 0..255"):
        predictor.predict([as_int * 4])
    assert len(predictor.predict([big])[0].text) == 5


def test_the_kernels_and_torch_ops_read_alike(tiny_run, tiny_dir):
    # predict.py reads a few images without the kernels (tests/cli/test_predict.py): same reads.
    ckpt, images = tiny_run / "checkpoints" / "best.ckpt", sorted(tiny_dir.glob("*.png"))
    with_kernel, without = Predictor.from_checkpoint(ckpt), Predictor.from_checkpoint(ckpt, kernel=False)
    assert with_kernel.net.fused and not without.net.fused
    reads, reads_without = with_kernel.predict(images), without.predict(images)
    assert [p.text for p in reads_without] == [p.text for p in reads]
    assert [p.confidence for p in reads_without] == pytest.approx([p.confidence for p in reads], rel=1e-4)


SYMBOLS = "2345678bcdefgmnpwxy"


def test_predictor_decodes_argmax_with_confidence():
    net = ReportCNN(num_classes=19)
    logits = torch.full((1, 5, 19), -10.0)
    for pos, idx in enumerate(Charset(SYMBOLS).encode("2b827")):
        logits[0, pos, idx] = 10.0
    net.forward = lambda x: logits
    (read,) = Predictor(net, SYMBOLS).read(torch.zeros(1, 1, 50, 200))
    assert read.text == "2b827" and 0.99 < read.confidence <= 1.0
    assert len(read.char_confidences) == 5 and min(read.char_confidences) > 0.99
    assert read.confidence == pytest.approx(np.prod(read.char_confidences))


def test_predictor_reads_variable_length_labels():
    net = CRNN(num_classes=19, length=6, channels=(8, 8, 8), hidden=8)
    labels, blank, charset = ["2b8", "cdef", "gmnpw", "xy2345"], 19, Charset(SYMBOLS)
    logits = torch.full((4, 25, 20), -10.0)
    logits[:, :, blank] = 10.0
    for row, text in enumerate(labels):  # each symbol on every 3rd frame, blanks between
        for k, index in enumerate(charset.encode(text)):
            logits[row, 3 * k + 1, index], logits[row, 3 * k + 1, blank] = 10.0, -10.0
    net.forward = lambda x: logits
    reads = Predictor(net, SYMBOLS).read(torch.zeros(4, 1, 50, 200))
    assert [r.text for r in reads] == labels and all(r.confidence > 0.99 for r in reads)
    # One confidence per character read, taken at the frame that wrote it.
    assert [len(r.char_confidences) for r in reads] == [len(t) for t in labels]


def test_predictor_read_all_batches_in_order():
    torch.manual_seed(0)
    predictor = Predictor(ReportCNN(num_classes=19), SYMBOLS, batch_size=2)
    x = torch.rand(5, 1, 50, 200)  # 2 + 2 + 1
    batched, whole = predictor.read_all(x), predictor.read(x)
    assert [p.text for p in batched] == [p.text for p in whole] and len(batched) == 5
    assert [p.confidence for p in batched] == pytest.approx([p.confidence for p in whole], rel=1e-5)
