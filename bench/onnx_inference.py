"""Batched images/s of a checkpoint's ONNX export on ONNX Runtime, as predict.py reads it (in a
process without PyTorch: bench.py runs this script, so that its own PyTorch threads, still
spinning after its PyTorch figures, do not share the cores).

    .venv/bin/python bench/onnx_inference.py CHECKPOINT.onnx DATA_DIR [--batch 256] [--goal 2000]

Prints one JSON line: {"images": N, "batch": B, "img_per_s": X} (median of 5 passes over the
folder's images, decoded once beforehand, texts included); with --goal, then a line saying whether
X is at or above it (issue 24's goal 3: `--goal 2000` for the recipe's CRNN)."""

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from captcha_lab.cli.process import reuse_freed_memory
from captcha_lab.data.images import ImageError, list_images, to_floats
from captcha_lab.inference.onnx_backend import OnnxPredictor
from captcha_lab.inference.reader import BATCH_SIZE


def readable(predictor: OnnxPredictor, paths: list[Path]) -> Iterator[np.ndarray]:
    for path in paths:
        try:
            yield predictor.prepare(path)  # at the net's own size and channels
        except ImageError as e:  # as predict.py: named, and the others are still read
            print(f"skipped: {e}", file=sys.stderr)


def goal_line(img_per_s: float, goal: float, batch: int) -> str:
    met = "MET" if img_per_s >= goal else "NOT MET"  # the figure floored: 1999.6 does not read as 2000
    return f"GOAL: >= {goal:g} images/s batched (batch {batch}) on ONNX Runtime: {int(img_per_s)}, {met}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("data")
    parser.add_argument("--batch", type=int, default=BATCH_SIZE)
    parser.add_argument("--goal", type=float, help="images/s to meet: print whether it is met")
    args = parser.parse_args()
    reuse_freed_memory()  # as predict.py (process.set_up_for_job)
    predictor = OnnxPredictor.from_file(args.onnx, batch_size=args.batch)
    images = to_floats(list(readable(predictor, list_images(args.data))))  # (N, C, H, W)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        predictor.read_all(images)
        times.append(time.perf_counter() - start)
    img_per_s = len(images) / statistics.median(times)
    print(json.dumps({"images": len(images), "batch": args.batch, "img_per_s": img_per_s}))
    if args.goal is not None:  # after the JSON line, which bench.py reads alone
        print(goal_line(img_per_s, args.goal, args.batch))


if __name__ == "__main__":
    from captcha_lab.cli.exits import user_errors

    with user_errors():  # a missing export or data folder: one line, exit 2
        main()
