"""The ONNX export (inference.export, `python -m captcha_lab.cli.export`) and the ONNX Runtime reader
(inference.onnx_backend)."""

import shutil
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch

from captcha_lab.cli import export as export_cli
from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.inference.export import export, export_quietly, write_onnx
from captcha_lab.inference.onnx_backend import OnnxError, OnnxPredictor
from captcha_lab.inference.onnx_format import sha256
from captcha_lab.inference.torch_backend import Predictor
from captcha_lab.models.checkpoint import CheckpointError
from captcha_lab.models.crnn import CRNN
from captcha_lab.models.report_cnn import ReportCNN

from ..conftest import ROOT


def noise(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (50, 200), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize(
    "make_net",
    [
        lambda: ReportCNN(num_classes=19),
        lambda: CRNN(num_classes=19, rnn="gru"),
        lambda: CRNN(num_classes=19, rnn="lstm"),
        lambda: CRNN(num_classes=19, rnn="none"),
        lambda: CRNN(num_classes=19, rnn="none", length=5, min_length=4),
    ],
    ids=["report_cnn", "crnn_gru", "crnn_lstm", "crnn_none", "crnn_min_length"],
)
def test_export_reads_like_pytorch(tmp_path, make_net):
    # Untrained nets read noise with varied confidences (and mostly varied texts), so a graph that
    # ignores its input would show. Batches of 3 with a last one of 1: not the exported example's
    # 2 (the RNN's state must follow the batch).
    torch.manual_seed(0)
    net = make_net().eval()
    write_onnx(net, CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    images = noise(7)
    ours = Predictor(net, CAPTCHA_V2, batch_size=3).predict_pixels(images)
    onnx = OnnxPredictor.from_file(tmp_path / "net.onnx", batch_size=3).predict_pixels(images)
    assert [p.text for p in onnx] == [p.text for p in ours]
    assert len({p.confidence for p in ours}) == len(images)
    assert [p.confidence for p in onnx] == pytest.approx([p.confidence for p in ours], rel=1e-4)
    if net.spec.get("min_length"):
        assert all(4 <= len(p.text) <= 5 for p in onnx)


def test_an_export_from_before_log_probs_still_reads_greedily(tmp_path):
    torch.manual_seed(0)
    net = CRNN(num_classes=19, rnn="none", length=5, min_length=5).eval()
    write_onnx(net, CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    model = onnx.load(tmp_path / "net.onnx")
    model.graph.output.pop()  # no log_probs output and no min_length, as exports were before
    model.metadata_props.pop(next(i for i, p in enumerate(model.metadata_props) if p.key == "min_length"))
    onnx.save(model, tmp_path / "old.onnx")
    images = noise(5)
    old = OnnxPredictor.from_file(tmp_path / "old.onnx").predict_pixels(images)
    greedy = Predictor(net, CAPTCHA_V2)
    greedy.read_lengths = None
    assert [p.text for p in old] == [p.text for p in greedy.predict_pixels(images)]
    assert any(len(p.text) != 5 for p in old)


def test_onnx_reader_refuses_another_checkpoints_export_and_foreign_files(tmp_path, tiny_run):
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    assert OnnxPredictor.from_file(ckpt.with_suffix(".onnx"), checkpoint=ckpt).checkpoint_sha256 == sha256(ckpt)
    write_onnx(ReportCNN(num_classes=19), CAPTCHA_V2, "0" * 64, tmp_path / "stale.onnx")
    with pytest.raises(OnnxError, match=r"stale.onnx is not the export of .*best.ckpt as it is now"):
        OnnxPredictor.from_file(tmp_path / "stale.onnx", checkpoint=ckpt)
    with pytest.raises(OnnxError, match=r"best.ckpt: not a readable ONNX model"):
        OnnxPredictor.from_file(ckpt)
    model = onnx.load(ckpt.with_suffix(".onnx"))
    meta = {"checkpoint_sha256": "0", "symbols": CAPTCHA_V2, "length": "five", "decoding": "ctc"}
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, tmp_path / "bad_meta.onnx")
    with pytest.raises(OnnxError, match=r"bad_meta.onnx: invalid literal for int"):
        OnnxPredictor.from_file(tmp_path / "bad_meta.onnx")
    onnx.helper.set_model_props(model, {**meta, "length": "5", "decoding": "beam"})
    onnx.save(model, tmp_path / "bad_meta.onnx")
    with pytest.raises(OnnxError, match=r"bad_meta.onnx: not a graph captcha-lab exports .*'beam'"):
        OnnxPredictor.from_file(tmp_path / "bad_meta.onnx")


def test_export_leaves_the_callers_net_as_it_was(tmp_path):
    net = ReportCNN(num_classes=19).train()
    write_onnx(net, CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    assert net.training and net.fused


@pytest.mark.slow
def test_export_command_writes_beside(tmp_path, tiny_run):
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", tmp_path / "old.ckpt")
    cli = [sys.executable, "-m", "captcha_lab.cli.export"]
    done = subprocess.run([*cli, str(tmp_path / "old.ckpt")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "old.onnx"), done.stderr
    assert OnnxPredictor.from_file(tmp_path / "old.onnx", checkpoint=tmp_path / "old.ckpt")


def test_export_command_refuses_a_non_onnx_name(tmp_path, tiny_run, capsys):
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", tmp_path / "old.ckpt")
    before = (tmp_path / "old.ckpt").read_bytes()
    # Over the checkpoint itself, a checkpoint named like an export, an out= whose folder is missing:
    # refused before anything is written.
    shutil.copy(tmp_path / "old.ckpt", tmp_path / "misnamed.onnx")
    for args, message in [
        ([str(tmp_path / "old.ckpt"), str(tmp_path / "old.ckpt")], "not a .onnx file name"),
        ([str(tmp_path / "misnamed.onnx")], "is the checkpoint itself"),
        ([str(tmp_path / "old.ckpt"), str(tmp_path / "missing" / "x.onnx")], "its folder is missing"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            export_cli.main(args)
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and err.startswith("error: out: ") and message in err
        assert len(err.splitlines()) == 1
    assert (tmp_path / "old.ckpt").read_bytes() == (tmp_path / "misnamed.onnx").read_bytes() == before
    with pytest.raises(SystemExit):  # a missing checkpoint is named as such, not as a missing out= folder
        export_cli.main([str(tmp_path / "gone" / "best.ckpt")])
    assert capsys.readouterr().err == f"error: no checkpoint file at {tmp_path / 'gone' / 'best.ckpt'}\n"


def test_a_failed_export_leaves_a_warning_not_an_error(tmp_path, caplog):
    (tmp_path / "best.ckpt").write_bytes(b"not a checkpoint")
    export_quietly(tmp_path / "best.ckpt")
    assert "no ONNX export: " in caplog.text and "reads it with PyTorch" in caplog.text
    assert not (tmp_path / "best.onnx").exists()
    with pytest.raises(CheckpointError):  # export itself raises what it hit
        export(tmp_path / "best.ckpt")


def test_a_crnn_exports_without_the_exporters_slice_warnings(tmp_path):
    net = CRNN(num_classes=len(CAPTCHA_V2), channels=(4, 4, 4), hidden=8, rnn="none")  # 3 frame convs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_onnx(net, CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    assert not [w for w in caught if "Constant folding" in str(w.message)]


def test_an_export_with_min_length_above_length_is_refused_when_loaded(tmp_path):
    write_onnx(CRNN(num_classes=19, rnn="none", length=5, min_length=5), CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    model = onnx.load(tmp_path / "net.onnx")
    next(p for p in model.metadata_props if p.key == "min_length").value = "9"
    onnx.save(model, tmp_path / "bad.onnx")
    with pytest.raises(OnnxError, match="min_length 9 is outside 0..length 5"):
        OnnxPredictor.from_file(tmp_path / "bad.onnx")


def test_onnx_reader_runs_on_the_threads_asked_for(tiny_run):
    # serve.py's threads=1 gives each batch one core; ignored, every batch took them all.
    onnx_path = tiny_run / "checkpoints" / "best.onnx"
    options = OnnxPredictor.from_file(onnx_path, threads=2).session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
