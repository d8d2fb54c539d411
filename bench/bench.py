"""Training and inference speed of captcha-lab against the report's Keras pipeline, in one run.

    .venv/bin/python bench/bench.py --data ../shared/data/captcha_v2 [--tf-python /tmp/tf/bin/python]
        [--tf-onednn] [--variants ours[,fused_off][,bf16]]   (default: ours,fused_off)

Both sides train the report's model for 60 epochs at batch 32 on the same folder (80/20
train/val, i.e. 696/174 for the 870 shared images) and then test on the same folder; runs
alternate (Keras, ours, Keras, ours, ...) so machine noise hits both alike, and medians are
reported. Prints a markdown report (paste it into docs/benchmarks.md).

TensorFlow switches its oneDNN kernels on by default only on some CPUs (those with AVX512_VNNI,
AVX512_BF16, AVX_VNNI or AMX); elsewhere, e.g. AVX2-only CPUs, Keras runs Eigen's slower kernels.
`--tf-onednn` adds a row for the Keras script with TF_ENABLE_ONEDNN_OPTS=1, and a ratio against it,
so that a gain from TensorFlow's defaults on one CPU is not mistaken for ours.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _args import executable
from torch.utils.flop_counter import FlopCounterMode

from captcha_lab.cli.process import reuse_freed_memory
from captcha_lab.data.labelled import load_folder
from captcha_lab.inference.onnx_format import onnx_path
from captcha_lab.inference.reader import BATCH_SIZE
from captcha_lab.inference.torch_backend import KERNEL_MIN_IMAGES, Predictor
from captcha_lab.models.report_cnn import ReportCNN

ROOT = Path(__file__).resolve().parents[1]

KERAS = ROOT.parent / "shared" / "reference" / "seed_keras.py"


def matmul_peak(n: int = 2048, repeats: int = 20) -> float:
    """Measured fp32 GFLOP/s of torch.mm on this machine (best of `repeats`)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_image() -> tuple[float, float]:
    """(forward, forward+backward) FLOPs of the report model for one image."""
    net = ReportCNN(num_classes=19, fused=False)  # the counter sees aten ops, not the fused kernel
    x = torch.rand(8, 1, 50, 200)
    with FlopCounterMode(display=False) as fwd:
        net(x)
    with FlopCounterMode(display=False) as both:
        net(x).sum().backward()
    return fwd.get_total_flops() / 8, both.get_total_flops() / 8


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc


def run_ours(data: str, epochs: int, out: Path, *overrides: str) -> dict:
    cmd = [
        sys.executable,
        "train.py",
        "data=captcha_v2",
        f"data.dir={data}",
        f"data.test_dir={data}",
        f"epochs={epochs}",
        f"hydra.run.dir={out}",
        *overrides,
    ]
    wall, _ = timed(cmd, cwd=ROOT)
    metrics = json.loads((out / "metrics.json").read_text())
    timing = json.loads((out / "timing.json").read_text())
    return {
        "wall_s": wall,
        "epoch_s": timing["epoch_s_median"],
        "val_seq_acc": metrics["val/seq_acc_best"],
        "test_char_acc": metrics["test/char_acc"],
    }


def run_keras(tf_python: str, data: str, epochs: int, seed: int, onednn: bool = False) -> dict:
    env = {**os.environ, "SEED": str(seed)}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # as written: TensorFlow's default for this CPU
    if onednn:
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    wall, proc = timed([tf_python, str(KERAS), data, data, str(epochs)], env=env)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "epoch_s": result["s_per_epoch"],
        "infer_img_per_s": result["infer_img_per_s"],
        "test_char_acc": result["char_acc"],
    }


def inference(ckpt: Path, data: str, batch: int = BATCH_SIZE, kernel: bool = True) -> float:
    """Batched images/s of a trained checkpoint on PyTorch, in-memory images, texts included (the
    Predictor, with predict.py's allocator setting; median of 5 passes). `kernel`: the first
    block's kernel, as a long-lived Predictor runs it; predict.py backend=torch runs it only from
    KERNEL_MIN_IMAGES images, so a folder like the shared 870 is read without."""
    reuse_freed_memory()
    predictor = Predictor.from_checkpoint(ckpt, batch_size=batch, kernel=kernel)
    images = load_folder(data, predictor.charset, predictor.net.spec["length"]).images
    times = []
    for _ in range(5):
        t = time.perf_counter()
        predictor.read_all(images)
        times.append(time.perf_counter() - t)
    return len(images) / statistics.median(times)


def inference_onnx(ckpt: Path, data: str, batch: int = BATCH_SIZE) -> float:
    """Batched images/s of the checkpoint's ONNX export (train.py's best.onnx), as predict.py
    reads it: bench/onnx_inference.py, in a process without PyTorch."""
    cmd = [sys.executable, str(ROOT / "bench" / "onnx_inference.py"), str(onnx_path(ckpt)), data, f"--batch={batch}"]
    return json.loads(timed(cmd)[1].stdout)["img_per_s"]


def predict_one(ckpt: Path, image: Path, backend: str = "auto", repeats: int = 3) -> float:
    """Median wall time of `predict.py` on one image, start-up included."""
    cmd = [sys.executable, "predict.py", f"ckpt_path={ckpt}", f"input={image}", f"backend={backend}"]
    return statistics.median(timed(cmd, cwd=ROOT)[0] for _ in range(repeats))


KERAS_ROW, ONEDNN_ROW = "Keras reference", "Keras reference, TF_ENABLE_ONEDNN_OPTS=1"
# --variants key -> (row name, train.py overrides). bf16 is not in the default set: on CPUs without
# AVX512-BF16 it is ~10x slower than fp32 (docs/benchmarks.md), a quarter of an hour per run.
VARIANTS = {
    "ours": ("captcha-lab", ()),
    "fused_off": ("captcha-lab, model.fused=false (PyTorch's ops for the first block)", ("model.fused=false",)),
    "bf16": ("captcha-lab, trainer.precision=bf16-mixed (opt-in)", ("trainer.precision=bf16-mixed",)),
    "sync_ckpt": ("captcha-lab, checkpoints written in the training thread", ("~trainer.plugins",)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "captcha_v2"))
    parser.add_argument("--tf-python", type=executable, help="a Python with TensorFlow, to run the Keras reference")
    parser.add_argument("--tf-onednn", action="store_true", help="also run Keras with TF_ENABLE_ONEDNN_OPTS=1")
    parser.add_argument("--variants", default="ours,fused_off", help=f"comma-separated, of {','.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    # Both sides; the report model's start is a long plateau that a few seeds never leave.
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keys = check_args(parser, args)  # the --variants keys
    ours = dict(VARIANTS[k] for k in VARIANTS if k in keys)  # row name -> overrides, 'ours' first

    peak = matmul_peak()
    fwd, train_flops = flops_per_image()
    n = len(list(Path(args.data).iterdir()))
    n_train, n_val = n - round(n * 0.2), round(n * 0.2)
    epoch_flops = n_train * train_flops + n_val * fwd
    kerases = {KERAS_ROW: False, ONEDNN_ROW: True} if args.tf_onednn else {KERAS_ROW: False}
    if not args.tf_python:
        kerases = {}
    runs: dict[str, list[dict]] = {name: [] for name in [*kerases, *ours]}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # alternate, so that machine noise hits every system alike
            for name, onednn in kerases.items():
                runs[name].append(run_keras(args.tf_python, args.data, args.epochs, args.seed, onednn))
            for i, (name, overrides) in enumerate(ours.items()):
                out = Path(tmp) / f"run{r}_{i}"
                runs[name].append(run_ours(args.data, args.epochs, out, f"seed={args.seed}", *overrides))
            print(f"repeat {r}: " + json.dumps({k: v[-1] for k, v in runs.items()}), file=sys.stderr)
        ckpt = Path(tmp) / "run0_0" / "checkpoints" / "best.ckpt"  # the 'ours' row's first run
        # (batch, kernel) -> images/s on PyTorch: the default, a small batch, and predict.py
        # backend=torch's way below KERNEL_MIN_IMAGES images; ("onnx", batch): ONNX Runtime.
        settings = [(BATCH_SIZE, False), (BATCH_SIZE, True), (32, True)]
        img_per_s = {s: inference(ckpt, args.data, *s) for s in settings}
        img_per_s |= {("onnx", b): inference_onnx(ckpt, args.data, b) for b in (BATCH_SIZE, 32)}
        image = next(Path(args.data).glob("*.png"))
        # backend=onnx, not auto: a failed export must not be timed as PyTorch without a word.
        one = {backend: predict_one(ckpt, image, backend) for backend in ("onnx", "torch")}
    report(args, peak, fwd, epoch_flops, runs, img_per_s, one)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    # Before the minutes of measuring: a typo fails in one line, not in a traceback mid-run.
    keys = [k.strip() for k in args.variants.split(",")]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown or "ours" not in keys:
        parser.error(f"--variants must include 'ours'; unknown: {unknown} (choices: {', '.join(VARIANTS)})")
    if not Path(args.data).is_dir():
        parser.error(f"--data: no such folder: {args.data}")
    if args.tf_onednn and not args.tf_python:
        parser.error("--tf-onednn needs --tf-python")
    if args.repeats < 1 or args.epochs < 1:
        parser.error(f"--repeats and --epochs must be at least 1, got {args.repeats} and {args.epochs}")
    return keys


def cpu_name() -> str:
    info = Path("/proc/cpuinfo")  # Linux; elsewhere what platform knows
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def report(args, peak, fwd, epoch_flops, runs, img_per_s, one) -> None:
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    kerases = [name for name in (KERAS_ROW, ONEDNN_ROW) if name in med]
    bases = [med[name] for name in kerases]  # the ratio columns: Keras as written, then with oneDNN
    print(
        f"machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); measured fp32 matmul peak {peak:.0f} GFLOP/s"
    )
    print(f"command: {' '.join(sys.argv)}; {args.repeats} alternating repeats, medians")
    print(f"report model: {fwd / 1e6:.1f} MFLOP/image forward; {epoch_flops / 1e9:.1f} GFLOP per epoch (train + val)\n")
    heads = ["ratio to Keras", "ratio to Keras with oneDNN"][: len(bases)] or ["ratio"]
    cols = [f"whole {args.epochs}-epoch process, s", *heads, "epoch, s", *heads, "GFLOP/s (% of peak)", "test char_acc"]
    print(f"| system | {' | '.join(cols)} |\n|{'---|' * (len(cols) + 1)}")
    for name, m in med.items():
        gflops = epoch_flops / m["epoch_s"] / 1e9
        row = [f"{m['wall_s']:.1f}", *_ratios(m, bases, "wall_s"), f"{m['epoch_s']:.3f}", *_ratios(m, bases, "epoch_s")]
        print(f"| {name} | {' | '.join(row)} | {gflops:.0f} ({gflops / peak:.0%}) | {m['test_char_acc']:.3f} |")
    print("\n(epoch: ours is the median epoch after the first, validation and checkpoints included; Keras's is its")
    print(" fit time / epochs, as seed_keras.py prints it, so its first epoch's graph tracing is spread over all)")
    keras_inf = "".join(f" ({name}: {med[name]['infer_img_per_s']:.0f})" for name in kerases)
    onnx, torch_kernel, torch_ops = (
        img_per_s["onnx", BATCH_SIZE],
        img_per_s[BATCH_SIZE, True],
        img_per_s[BATCH_SIZE, False],
    )
    print(
        f"\nbatched inference (in memory, at the default batch of {BATCH_SIZE}), on ONNX Runtime as predict.py "
        f"reads (best.onnx): {onnx:.0f} images/s (at batch 32: {img_per_s['onnx', 32]:.0f}){keras_inf}"
    )
    print(
        f"  on PyTorch (Predictor): {torch_kernel:.0f} images/s (at batch 32: {img_per_s[32, True]:.0f}; "
        f"without the kernel, as predict.py backend=torch reads fewer than {KERNEL_MIN_IMAGES} images: "
        f"{torch_ops:.0f})"
    )
    print(
        f"predict.py on one image, wall time with start-up (median of 3): {one['onnx']:.2f} s "
        f"(backend=torch: {one['torch']:.2f} s)"
    )
    per_repeat = {k: [round(r["val_seq_acc"], 3) for r in v] for k, v in runs.items() if k not in kerases}
    print("val seq_acc per repeat: " + json.dumps(per_repeat))
    print_goals(med, kerases, onnx, one["onnx"], epoch_flops / peak / 1e9, args.epochs)


def print_goals(
    med: dict, kerases: list[str], img_per_s: float, one_s: float, peak_epoch_s: float, epochs: int
) -> None:
    """Issues 5 and 24's goals, each with its figure from this run; `peak_epoch_s`: an epoch's
    FLOPs at the measured matmul peak."""
    ours = med.get(VARIANTS["ours"][0])
    ratios = [(name, ours["wall_s"] / med[name]["wall_s"]) for name in kerases] if ours else []
    goals = [(f"whole run <= 0.5 x {name}", f"{ratio:.2f}", ratio <= 0.5) for name, ratio in ratios]
    if ours:
        share = peak_epoch_s / ours["epoch_s"]
        goals.append(("our epoch at >= 60% of the matmul peak", f"{share:.0%}", share >= 0.6))
    goals += [
        (
            f"batched inference >= 2000 images/s (ONNX Runtime, batch {BATCH_SIZE})",
            f"{img_per_s:.0f}",
            img_per_s >= 2000,
        ),
        ("predict.py on one image <= 3 s", f"{one_s:.2f} s", one_s <= 3),
    ]
    print("\ngoals (issues 5 and 24):")
    for goal, figure, met in goals:
        print(f"- {goal}: {figure}, {'met' if met else 'NOT met'}")
    if ours and kerases:
        print(half_run_needs(ours, kerases[-1], med[kerases[-1]]["wall_s"], epochs, peak_epoch_s))


def half_run_needs(ours: dict, keras: str, keras_s: float, epochs: int, peak_epoch_s: float) -> str:
    """What half of the last Keras row's whole run (with oneDNN, the goal's baseline, where it ran)
    leaves our epochs, given the time this run spent outside its median epochs (start-up, the
    first epoch's extra, test, export), as a share of the matmul peak: above 100% no fp32 code of
    this model can meet it on this machine."""
    outside = ours["wall_s"] - epochs * ours["epoch_s"]
    epoch_s = (0.5 * keras_s - outside) / epochs
    if epoch_s <= 0:
        return f"  half of {keras} ({0.5 * keras_s:.1f} s) is less than our {outside:.1f} s outside the epochs"
    return (
        f"  half of {keras} ({0.5 * keras_s:.1f} s) leaves {epoch_s:.3f} s an epoch beside our {outside:.1f} s"
        f" outside the epochs: {peak_epoch_s / epoch_s:.0%} of the fp32 matmul peak (now {ours['epoch_s']:.3f} s)"
    )


def _ratios(m: dict, bases: list[dict], key: str) -> list[str]:
    return [f"{m[key] / b[key]:.2f}" for b in bases] or ["-"]


if __name__ == "__main__":
    main()
