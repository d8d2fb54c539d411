"""Process-wide settings that train.py, eval.py, predict.py and serve.py make before their job
(set_up_for_job): the two memory settings below, OpenCV's duplicate warnings off
(data.images.quiet_decoders), Lightning's noise (quiet_lightning), and no NVML probe per optimizer
step on a machine without NVIDIA's driver (count_gpus_without_missing_nvml).

reuse_freed_memory: on CPU, PyTorch allocates every activation and gradient with plain malloc.
glibc serves blocks over its mmap threshold (128 KiB at start, adapting up to 32 MiB) with fresh
mmap pages and trims the heap top after large frees, so each training step faults its large
tensors back in page by page, which slows the steps down (bench/allocator.py measures by how
much). Serving everything from the heap and never trimming it makes the steady state
fault-free. The cost is that the process keeps its peak heap until it exits, which is what a
training or inference job wants anyway.

freeze_loaded_objects: importing Lightning leaves hundreds of thousands of objects that the garbage collector
tracks and, in its full collections, walks again and again although none of them is garbage; at
exit the interpreter walks them once more while it tears the modules down. Moving them to the
collector's permanent generation makes each process shorter (docs/benchmarks.md).
"""

import ctypes
import functools
import gc
import logging
import os
import sys
import warnings

from captcha_lab.data.images import quiet_decoders

# mallopt parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Tell glibc malloc to never mmap and never trim; False where there is no glibc (macOS,
    Windows, musl), which is left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    # mallopt returns 1 on success; each setting is independent of the other.
    return bool(mallopt(M_MMAP_MAX, 0)) & bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


@functools.cache  # once per process: a sweep's jobs share one, and a later job's objects die
def freeze_loaded_objects() -> None:
    """Collect what garbage there is, then exempt every live object from later collections."""
    # Collect first, so that no garbage is frozen: frozen cycles are never freed.
    gc.collect()
    gc.freeze()


def quiet_lightning() -> None:
    """Two things Lightning 2.6 prints in every training run that no user can act on: torch's
    FutureWarning about the pytree LeafSpec that Lightning builds whenever a loop starts (for
    Lightning to fix), and its "💡 Tip" lines advertising its cloud services."""
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_tip)  # once: a set


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


def count_gpus_without_missing_nvml() -> bool:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 when imported, so that counting GPUs does
    not initialise CUDA (a forked DDP worker could not use it after that). Without NVIDIA's driver
    (the CUDA build of torch on a CPU machine) torch then tries to load NVML again in every
    torch.cuda.is_available(), which every optimizer step calls, before it falls back to the CUDA
    runtime's count anyway. There the variable is set to 0: the same answer, without a failed
    dlopen per step. True where it was. A no-op before Lightning is imported (predict.py on ONNX
    Runtime never imports it)."""
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return False
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the library torch would load
    except OSError:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
        return True
    return False


def set_up_for_job() -> None:
    reuse_freed_memory()
    count_gpus_without_missing_nvml()
    freeze_loaded_objects()
    quiet_decoders()
    quiet_lightning()
