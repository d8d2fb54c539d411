"""The ONNX export (captcha_lab.export) and predict.py's ONNX Runtime reader (captcha_lab.onnx_reader)."""

import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

from captcha_lab.charset import CAPTCHA_V2
from captcha_lab.checkpoint import CheckpointError
from captcha_lab.export import export, export_quietly, write_onnx
from captcha_lab.nets import CRNN, ReportCNN
from captcha_lab.onnx_reader import OnnxError, OnnxPredictor
from captcha_lab.predict import Predictor
from captcha_lab.predict_pipeline import run
from captcha_lab.reading import sha256

from .conftest import ROOT


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
    ],
    ids=["report_cnn", "crnn_gru", "crnn_lstm", "crnn_none"],
)
def test_export_reads_like_pytorch(tmp_path, make_net):
    # Untrained nets read noise with varied confidences (and mostly varied texts), so a graph that
    # ignores its input would show. Batches of 3 with a last one of 1: not the exported example's
    # 2 (the RNN's state must follow the batch).
    torch.manual_seed(0)
    net = make_net().eval()
    write_onnx(net, CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    images = noise(7)
    ours = Predictor(net, CAPTCHA_V2, batch_size=3).predict_gray(images)
    onnx = OnnxPredictor.from_file(tmp_path / "net.onnx", batch_size=3).predict_gray(images)
    assert [p.text for p in onnx] == [p.text for p in ours]
    assert len({p.confidence for p in ours}) == len(images)
    assert [p.confidence for p in onnx] == pytest.approx([p.confidence for p in ours], rel=1e-4)


def test_onnx_reader_refuses_another_checkpoints_export_and_foreign_files(tmp_path, tiny_run):
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    assert OnnxPredictor.from_file(ckpt.with_suffix(".onnx"), checkpoint=ckpt).checkpoint_sha256 == sha256(ckpt)
    write_onnx(ReportCNN(num_classes=19), CAPTCHA_V2, "0" * 64, tmp_path / "stale.onnx")
    with pytest.raises(OnnxError, match=r"stale.onnx is not the export of .*best.ckpt as it is now"):
        OnnxPredictor.from_file(tmp_path / "stale.onnx", checkpoint=ckpt)
    with pytest.raises(OnnxError, match=r"best.ckpt: not a readable ONNX model"):
        OnnxPredictor.from_file(ckpt)
    model = onnx.load(ckpt.with_suffix(".onnx"))
    meta = {"checkpoint_sha256": "0", "symbols": CAPTCHA_V2, "length": "five", "decode": "ctc"}
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, tmp_path / "bad_meta.onnx")
    with pytest.raises(OnnxError, match=r"bad_meta.onnx: invalid literal for int"):
        OnnxPredictor.from_file(tmp_path / "bad_meta.onnx")
    onnx.helper.set_model_props(model, {**meta, "length": "5", "decode": "beam"})
    onnx.save(model, tmp_path / "bad_meta.onnx")
    with pytest.raises(OnnxError, match=r"bad_meta.onnx: not a graph captcha_lab.export writes .*'beam'"):
        OnnxPredictor.from_file(tmp_path / "bad_meta.onnx")


def test_export_leaves_the_callers_net_as_it_was(tmp_path):
    net = ReportCNN(num_classes=19).train()
    write_onnx(net, CAPTCHA_V2, "0" * 64, tmp_path / "net.onnx")
    assert net.training and net.fused


def predict_lines(ckpt, image, backend: str) -> tuple[list[str], str, str]:
    """predict.py's run in a fresh process: its stdout lines, whether it imported torch, its stderr."""
    cfg = {"ckpt_path": str(ckpt), "input": str(image), "backend": backend}
    code = (
        "import sys; from omegaconf import OmegaConf; from captcha_lab.predict_pipeline import run\n"
        f"run(OmegaConf.merge(OmegaConf.create({cfg!r}), {{'output': None}}))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    *lines, torch_loaded = done.stdout.splitlines()
    return lines, torch_loaded, done.stderr


def test_train_exports_best_onnx_and_predict_reads_it_without_torch(tiny_run, tiny_dir):
    ckpt = tiny_run / "checkpoints" / "best.ckpt"
    onnx_lines, torch_loaded, _ = predict_lines(ckpt, tiny_dir, "auto")
    assert torch_loaded == "False"  # `import torch` is most of a PyTorch start-up (issue 5)
    torch_lines, torch_loaded, _ = predict_lines(ckpt, tiny_dir, "torch")
    assert torch_loaded == "True"
    assert len(onnx_lines) == 80
    # Same texts; confidences printed to 4 digits may differ in the last one.
    assert [line.split("\t")[:2] for line in onnx_lines] == [line.split("\t")[:2] for line in torch_lines]
    onnx_conf = [float(line.split("\t")[2]) for line in onnx_lines]
    assert onnx_conf == pytest.approx([float(line.split("\t")[2]) for line in torch_lines], rel=1e-3)


def test_a_stale_export_is_skipped_with_a_warning_or_refused(tmp_path, tiny_run, tiny_dir, capsys):
    # As after a resumed run that was stopped: best.ckpt replaced, best.onnx from before.
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", tmp_path / "best.ckpt")
    write_onnx(ReportCNN(num_classes=19), CAPTCHA_V2, "0" * 64, tmp_path / "best.onnx")
    image = sorted(tiny_dir.glob("*.png"))[0]
    lines, torch_loaded, err = predict_lines(tmp_path / "best.ckpt", image, "auto")
    assert torch_loaded == "True" and len(lines) == 1
    assert err.startswith("warning: ") and "is not the export of" in err and "with PyTorch" in err
    cfg = OmegaConf.create({"ckpt_path": str(tmp_path / "best.ckpt"), "input": str(image), "backend": "onnx"})
    with pytest.raises(SystemExit):
        run(cfg)
    assert "error: " in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"backend": "onnx", "ckpt_path": "OTHER"}, "error: backend=onnx: no "),
        ({"backend": "onnx", "device": "cuda"}, "error: backend: onnx reads on the CPU only"),
        ({"backend": "onnxx"}, "error: backend: Invalid value 'onnxx'"),
        ({"ckpt_path": "ONNX"}, "error: ckpt_path: "),  # the export itself, which README names
    ],
)
def test_backend_errors_are_one_line(tmp_path, tiny_run, tiny_dir, capsys, overrides, message):
    other = tmp_path / "other.ckpt"  # a checkpoint without an export beside it
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", other)
    cfg = {"ckpt_path": str(tiny_run / "checkpoints" / "best.ckpt"), "input": str(tiny_dir), **overrides}
    named = {"OTHER": str(other), "ONNX": str(tiny_run / "checkpoints" / "best.onnx")}
    cfg["ckpt_path"] = named.get(cfg["ckpt_path"], cfg["ckpt_path"])
    with pytest.raises(SystemExit):
        run(OmegaConf.create(cfg))
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and len(captured.err.splitlines()) == 1 and not captured.out


def test_export_command_writes_beside_and_refuses_a_non_onnx_name(tmp_path, tiny_run):
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", tmp_path / "old.ckpt")
    cli = [sys.executable, "-m", "captcha_lab.export"]
    done = subprocess.run([*cli, str(tmp_path / "old.ckpt")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == str(tmp_path / "old.onnx"), done.stderr
    assert OnnxPredictor.from_file(tmp_path / "old.onnx", checkpoint=tmp_path / "old.ckpt")
    before = (tmp_path / "old.ckpt").read_bytes()
    done = subprocess.run(
        [*cli, str(tmp_path / "old.ckpt"), str(tmp_path / "old.ckpt")], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith("error: out: ") and "not a .onnx file name" in done.stderr
    assert (tmp_path / "old.ckpt").read_bytes() == before
    # A checkpoint named like an export, and an out= whose folder is missing: refused before any work.
    shutil.copy(tmp_path / "old.ckpt", tmp_path / "misnamed.onnx")
    for args, message in [
        ([str(tmp_path / "misnamed.onnx")], "is the checkpoint itself"),
        ([str(tmp_path / "old.ckpt"), str(tmp_path / "missing" / "x.onnx")], "its folder is missing"),
    ]:
        done = subprocess.run([*cli, *args], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 2 and done.stderr.startswith("error: out: ") and message in done.stderr
        assert len(done.stderr.splitlines()) == 1
    assert (tmp_path / "misnamed.onnx").read_bytes() == before


def test_a_failed_export_leaves_a_warning_not_an_error(tmp_path, caplog):
    (tmp_path / "best.ckpt").write_bytes(b"not a checkpoint")
    export_quietly(tmp_path / "best.ckpt")
    assert "no ONNX export: " in caplog.text and "reads it with PyTorch" in caplog.text
    assert not (tmp_path / "best.onnx").exists()
    with pytest.raises(CheckpointError):  # export itself raises what it hit
        export(tmp_path / "best.ckpt")
