"""What `captcha_lab.cli.process.reuse_freed_memory` buys: report-model images/s and page faults per
step, training and inference, each setting in a fresh process.

    .venv/bin/python bench/allocator.py [--steps 20]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from captcha_lab.cli.process import reuse_freed_memory
from captcha_lab.models.report_cnn import ReportCNN

CASES = [(32, True), (64, True), (32, False), (256, False)]  # (batch, training?)


def measure(batch: int, train: bool, steps: int) -> tuple[float, float]:
    """(images/s, minor page faults per step) of the report model on random images."""
    torch.manual_seed(0)
    net = ReportCNN(19).train(train)
    opt = torch.optim.Adam(net.parameters(), 1e-3, fused=True)
    x, y = torch.rand(batch, 1, 50, 200), torch.randint(0, 19, (batch, 5))

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x).flatten(0, 1), y.flatten()).backward()
            opt.step()
        else:
            with torch.inference_mode():
                net(x)

    for _ in range(3):  # warm-up: oneDNN picks its kernels
        step()
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return batch * steps / seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps


def child(reuse: bool, steps: int) -> None:
    if reuse:
        reuse_freed_memory()
    print(json.dumps([measure(batch, train, steps) for batch, train in CASES]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", choices=["default", "reuse"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child == "reuse", args.steps)
    runs = {}
    for setting in ("default", "reuse"):
        cmd = [sys.executable, __file__, "--child", setting, "--steps", str(args.steps)]
        runs[setting] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"report model, {torch.get_num_threads()} threads, {args.steps} steps per case after 3 warm-up steps\n")
    columns = ["case", "glibc default: images/s", "page faults/step", "reuse_freed_memory: images/s"]
    columns += ["page faults/step", "speed-up"]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for (batch, train), (d_ips, d_pf), (r_ips, r_pf) in zip(CASES, runs["default"], runs["reuse"], strict=True):
        case = f"{'training step' if train else 'inference'}, batch {batch}"
        print(f"| {case} | {d_ips:.0f} | {d_pf:.0f} | {r_ips:.0f} | {r_pf:.0f} | {r_ips / d_ips:.2f}x |")


if __name__ == "__main__":
    main()
