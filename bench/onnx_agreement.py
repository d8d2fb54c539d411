"""Do predict.py's two backends read alike? Exports a checkpoint to a temporary .onnx and reads a
folder with both, PyTorch (Predictor) and ONNX Runtime (OnnxPredictor).

    .venv/bin/python bench/onnx_agreement.py CHECKPOINT.ckpt [DATA_DIR]   (default: the shared 870)

Prints one line: images, texts that differ, the largest relative confidence difference, and how
many of PyTorch's texts are the file's label."""

import argparse
import tempfile
from pathlib import Path

from captcha_lab.data.images import ImageError, list_images
from captcha_lab.inference.export import export
from captcha_lab.inference.onnx_backend import OnnxPredictor
from captcha_lab.inference.torch_backend import Predictor

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data" / "captcha_v2"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export(args.checkpoint, Path(tmp) / "net.onnx")  # a missing checkpoint named first
        paths = list_images(args.data)
        ours = [p for _, p in Predictor.from_checkpoint(args.checkpoint).predict_files(paths)]
        theirs = [p for _, p in OnnxPredictor.from_file(onnx, checkpoint=args.checkpoint).predict_files(paths)]
    # Unreadable images are errors on both sides alike (tests/inference/test_onnx.py): left out.
    read = [(p, a, b) for p, a, b in zip(paths, ours, theirs, strict=True) if not isinstance(a, ImageError)]
    differ = sum(a.text != b.text for _, a, b in read)
    worst = max(abs(b.confidence - a.confidence) / max(a.confidence, 1e-30) for _, a, b in read)
    right = sum(a.text == p.stem for p, a, _ in read)
    print(
        f"{args.checkpoint}: {len(read)} images, {differ} texts differ, largest relative confidence "
        f"difference {worst:.1e}; PyTorch reads {right} right"
    )


if __name__ == "__main__":
    from captcha_lab.cli.exits import user_errors

    with user_errors():  # a missing checkpoint or data folder: one line, exit 2
        main()
