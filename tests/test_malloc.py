import platform
import subprocess
import sys

from captcha_lab.malloc import reuse_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Page faults of 4 report-model training steps at batch 64 (whose first conv output, 41 MB, is
# over the 32 MB that glibc always mmaps by default), after 2 warm-up steps.
STEPS = """
import resource, torch, torch.nn.functional as F
from captcha_lab.malloc import reuse_freed_memory
from captcha_lab.nets import ReportCNN
reuse_freed_memory()
torch.manual_seed(0)
net = ReportCNN(19)
x, y = torch.rand(64, 1, 50, 200), torch.randint(0, 19, (64, 5))
def step():
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x).flatten(0, 1), y.flatten()).backward()
for _ in range(2):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_training_steps_stop_faulting_in_memory():
    assert reuse_freed_memory() == GLIBC
    if not GLIBC:
        return
    # A fresh process: the setting is process-wide and other tests' train() calls have made it here.
    faults = int(subprocess.run([sys.executable, "-c", STEPS], check=True, capture_output=True, text=True).stdout)
    # glibc's default: ~40,000 per step, every step; with the setting, a few thousand at most
    # while the heap settles, then none.
    assert faults < 40_000
