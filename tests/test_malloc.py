import platform
import resource
import sys

import torch
import torch.nn.functional as F

from captcha_lab.malloc import reuse_freed_memory
from captcha_lab.nets import ReportCNN

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_training_steps_stop_faulting_in_memory():
    assert reuse_freed_memory() == GLIBC
    if not GLIBC:
        return
    torch.manual_seed(0)
    net = ReportCNN(19)
    # Batch 64: the first conv's output is 41 MB, over the 32 MB that glibc always mmaps by default.
    x, y = torch.rand(64, 1, 50, 200), torch.randint(0, 19, (64, 5))

    def step():
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x).flatten(0, 1), y.flatten()).backward()

    for _ in range(2):
        step()
    before = page_faults()
    for _ in range(4):
        step()
    # glibc's default: ~40,000 per step, every step; with the setting, a few thousand at most
    # while the heap settles, then none.
    assert page_faults() - before < 40_000
