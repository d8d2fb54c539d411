"""What each speed change buys: wall and CPU time of one training step (batch 32) of the report model.

    .venv/bin/python bench/profile_step.py [--threads 1] [--steps 20] [--ops]

CPU time (summed over threads) is disturbed little by other load on the machine, but it counts
OpenMP threads that spin while they wait; wall time shows what a run gains, on a quiet machine.
`--ops` prints the top operators of each variant from torch.profiler. Runs with the pipeline's
allocator setting (captcha_lab.cli.process; bench/allocator.py measures what that buys).
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from captcha_lab.cli.process import reuse_freed_memory
from captcha_lab.models.report_cnn import ReportCNN


def report_order(net: ReportCNN) -> ReportCNN:
    """The report's conv-act-pool order (ReportCNN pools first where that is exact)."""
    conv1, pool1, act1, conv2, pool2, act2, *rest = net.trunk
    net.trunk = nn.Sequential(conv1, act1, pool1, conv2, act2, pool2, *rest)
    return net


VARIANTS = {
    "NCHW, report order": lambda: report_order(ReportCNN(19, fused=False)).to(memory_format=torch.contiguous_format),
    "channels_last, report order": lambda: report_order(ReportCNN(19, fused=False)),
    "channels_last, pool first": lambda: ReportCNN(19, fused=False),
    "... + first conv, pool and ReLU as one kernel (default)": lambda: ReportCNN(19),
}


def step_seconds(net: nn.Module, steps: int, bf16: bool = False, show: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds per step."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.rand(32, 1, 50, 200), torch.randint(0, 19, (32, 5))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        F.cross_entropy(logits.float().flatten(0, 1), y.flatten()).backward()
        opt.step()

    for _ in range(3):  # warm-up: oneDNN picks and JIT-compiles its kernels
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps
    if show:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=6))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ops", action="store_true", help="print each variant's top operators")
    args = parser.parse_args()
    reuse_freed_memory()
    torch.set_num_threads(args.threads)
    rows = [(name, step_seconds(make(), args.steps, show=args.ops)) for name, make in VARIANTS.items()]
    rows.append(("... + bf16 autocast (opt-in)", step_seconds(ReportCNN(19), args.steps, bf16=True)))
    (wall0, cpu0) = rows[0][1]
    print(f"| variant ({args.threads} thread(s)) | wall ms / step | vs first | CPU ms / step | vs first |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall * 1000:.1f} | {wall / wall0:.2f} | {cpu * 1000:.1f} | {cpu / cpu0:.2f} |")


if __name__ == "__main__":
    main()
