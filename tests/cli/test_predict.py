"""predict.py's job (cli.predict): what it prints and exits with, its backend refusals, which
backend reads, and what it imports; its inputs and CSV outputs are in test_predict_files.py."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from omegaconf import OmegaConf

from captcha_lab.cli.predict import check_device, run
from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.errors import ConfigError
from captcha_lab.inference.export import write_onnx
from captcha_lab.inference.torch_backend import Predictor
from captcha_lab.models.report_cnn import ReportCNN

from ..conftest import ROOT, run_script


class Job(NamedTuple):
    lines: list[str]  # its stdout
    modules: set[str]  # the top-level modules the process had imported by the job's end
    err: str


@pytest.fixture(scope="module")
def stale_ckpt(tmp_path_factory, tiny_run) -> Path:
    """As after a resumed run that was stopped: best.ckpt replaced, best.onnx from before."""
    stale = tmp_path_factory.mktemp("stale")
    shutil.copy(tiny_run / "checkpoints" / "best.ckpt", stale / "best.ckpt")
    write_onnx(ReportCNN(num_classes=19), CAPTCHA_V2, "0" * 64, stale / "best.onnx")
    return stale / "best.ckpt"


@pytest.fixture(scope="module")
def jobs(tiny_run, tiny_dir, stale_ckpt) -> dict[str, Job]:
    """cli.predict.run in one fresh process, one job after another: "onnx" (auto: the run's export), "stale" (auto,
    one image, stale_ckpt), "torch" (backend=torch). In that order: what "onnx" leaves unimported shows what "stale"
    imported."""
    ckpt, one = str(tiny_run / "checkpoints" / "best.ckpt"), str(sorted(tiny_dir.glob("*.png"))[0])
    cfgs = {
        "onnx": {"ckpt_path": ckpt, "input": str(tiny_dir), "backend": "auto"},
        "stale": {"ckpt_path": str(stale_ckpt), "input": one, "backend": "auto"},
        "torch": {"ckpt_path": ckpt, "input": str(tiny_dir), "backend": "torch"},
    }
    code = (
        "import sys; from omegaconf import OmegaConf; from captcha_lab.cli.predict import run\n"
        f"for cfg in {list(cfgs.values())!r}:\n"
        "    run(OmegaConf.merge(OmegaConf.create(cfg), {'output': None}))\n"
        "    print('--', *sorted({m.split('.')[0] for m in sys.modules}), flush=True)\n"
        "    print('--', file=sys.stderr, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    ends = [i for i, line in enumerate(lines) if line.startswith("-- ")]
    starts, errs = [0, *(i + 1 for i in ends[:-1])], done.stderr.split("--\n")[:-1]
    return {
        name: Job(lines[start:end], set(lines[end].split()[1:]), err)
        for name, start, end, err in zip(cfgs, starts, ends, errs, strict=True)
    }


def test_predict_path_imports_neither_lightning_nor_torchvision(jobs):
    # Each costs seconds of predict.py's start-up (issue 5: one image in <= 3 s); numba, ~0.7 s, is
    # imported only when the report net's CPU kernel first runs. torch only for backend=torch.
    assert "captcha_lab" in jobs["onnx"].modules
    assert not {"torch", "lightning", "numba"} & jobs["onnx"].modules
    assert not {"lightning", "torchvision", "torchmetrics", "hydra", "numba"} & jobs["torch"].modules


def test_train_exports_best_onnx_and_predict_reads_it_without_torch(jobs):
    # `import torch` is most of a PyTorch start-up (issue 5).
    assert "torch" not in jobs["onnx"].modules and "torch" in jobs["torch"].modules
    onnx_lines, torch_lines = jobs["onnx"].lines, jobs["torch"].lines
    assert len(onnx_lines) == 80
    # Same texts; confidences printed to 4 digits may differ in the last one.
    assert [line.split("\t")[:2] for line in onnx_lines] == [line.split("\t")[:2] for line in torch_lines]
    onnx_conf = [float(line.split("\t")[2]) for line in onnx_lines]
    assert onnx_conf == pytest.approx([float(line.split("\t")[2]) for line in torch_lines], rel=1e-3)


def test_predict_reads_a_few_images_without_starting_the_kernel(jobs, tiny_run, tiny_dir):
    # numba's import and start-up (~0.7 s) would be a quarter of predict.py on one image.
    assert "numba" not in jobs["torch"].modules
    # Its reads are those of Predictor(kernel=False), which reads as the kernels do (tests/inference).
    images = sorted(tiny_dir.glob("*.png"))
    reads = Predictor.from_checkpoint(tiny_run / "checkpoints" / "best.ckpt", kernel=False).predict(images)
    expected = [[str(p), r.text] for p, r in zip(images, reads, strict=True)]
    assert [line.split("\t")[:2] for line in jobs["torch"].lines] == expected


def test_a_stale_export_is_skipped_with_a_warning_or_refused(jobs, stale_ckpt, tiny_dir, capsys):
    stale = jobs["stale"]
    assert "torch" in stale.modules and len(stale.lines) == 1  # read with PyTorch ("onnx" had not imported it)
    assert stale.err.startswith("warning: ") and "is not the export of" in stale.err and "with PyTorch" in stale.err
    image = sorted(tiny_dir.glob("*.png"))[0]
    with pytest.raises(SystemExit):
        run(OmegaConf.create({"ckpt_path": str(stale_ckpt), "input": str(image), "backend": "onnx"}))
    assert "error: " in capsys.readouterr().err


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


@pytest.mark.parametrize("csv_too", [True, False])
def test_a_reader_that_goes_away_ends_the_printing_not_the_csv(tmp_path, tiny_run, tiny_dir, csv_too):
    """`predict.py ... | head`: here the pipe is closed before the first line is printed."""
    out_csv, ckpt = tmp_path / "pred.csv", tiny_run / "checkpoints" / "best.ckpt"
    args = [sys.executable, "predict.py", f"ckpt_path={ckpt}", f"input={tiny_dir}", "batch_size=8"]
    process = subprocess.Popen(
        args + [f"output={out_csv}"] * csv_too, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0 and "Traceback" not in stderr, stderr
    if csv_too:
        with open(out_csv) as f:
            assert len(list(csv.DictReader(f))) == len(list(tiny_dir.glob("*.png")))


def test_a_csv_that_cannot_be_written_is_one_line_after_the_reads(tiny_run, tiny_dir, tmp_path, capsys, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("captcha_lab.cli.predict.atomic.writing", refused)
    one = sorted(tiny_dir.glob("*.png"))[0]
    cfg = {
        "ckpt_path": str(tiny_run / "checkpoints" / "best.ckpt"),
        "input": str(one),
        "output": str(tmp_path / "r.csv"),
    }
    with pytest.raises(SystemExit):
        run(OmegaConf.create(cfg))
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{one}\t")  # the read is printed before the CSV is written
    assert (
        captured.err
        == f"error: output: cannot write {tmp_path / 'r.csv'} (Permission denied); the reads above are all there is\n"
    )


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


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"backend": "onnx", "ckpt_path": "OTHER"}, "error: backend=onnx: no ONNX export at "),
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


def test_a_device_torch_cannot_use_is_named_in_torchs_first_sentence():
    # Torch's message for mps on this machine runs on for a paragraph and a list of ~60 backends.
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("mps is usable here")
    with pytest.raises(ConfigError) as refused:
        check_device("mps")
    message = str(refused.value)
    assert message.startswith("device: 'mps' is not usable here (") and message.endswith(".)")
    assert "Facebook" not in message and len(message) < 200
