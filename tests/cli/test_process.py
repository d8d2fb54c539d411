"""Process-wide settings made before each job: malloc that reuses freed memory, frozen objects, quiet Lightning,
no NVML probe per step."""

import gc
import importlib.util
import logging
import platform
import sys
import warnings
import weakref

import cv2
import PIL.Image
import pytest
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities._pytree import _tree_flatten

from captcha_lab.cli import process
from captcha_lab.cli.process import freeze_loaded_objects, quiet_lightning, reuse_freed_memory, set_up_for_job

from ..conftest import ROOT

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def test_training_steps_stop_faulting_in_memory():
    assert reuse_freed_memory() == GLIBC
    if not GLIBC:
        return
    # bench/allocator.py's measurement of its CASES[1], training at batch 64: the first conv's
    # output (41 MB) is over the 32 MB that glibc's default always mmaps, whatever the heap holds,
    # ~23,000-40,000 faults per step; with the setting, a few hundred at most while the heap settles.
    spec = importlib.util.spec_from_file_location("allocator", ROOT / "bench" / "allocator.py")
    allocator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(allocator)
    _, faults_per_step = allocator.measure(*allocator.CASES[1], steps=4)
    assert faults_per_step < 10_000


def test_freeze_collects_garbage_before_freezing_the_rest():
    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # garbage only a collection frees
    dead = weakref.ref(cycle)
    alive = Node()
    del cycle
    gc.unfreeze()
    freeze_loaded_objects.cache_clear()  # other tests' train() calls have made it in this process
    try:
        freeze_loaded_objects()
        assert dead() is None  # collected, not frozen (frozen cycles are never freed)
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())  # exempt from later collections
        frozen = gc.get_freeze_count()
        Node().self = None  # a later job's objects
        freeze_loaded_objects()
        assert gc.get_freeze_count() == frozen  # not frozen: once per process
    finally:
        gc.unfreeze()


def test_only_lightnings_pytree_warning_and_tips_are_quiet(caplog):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_lightning()
        _tree_flatten(1)  # builds torch's deprecated LeafSpec, as each of Lightning's loops does
        warnings.warn("another deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["another deprecation"]
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        rank_zero_info("💡 Tip: For seamless cloud logging ... litlogger")
        rank_zero_info("GPU available: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False"]


@pytest.mark.parametrize("nvml", [True, False])
def test_no_nvml_probe_per_step_without_nvidias_driver(nvml, monkeypatch):
    def cdll(name):
        if not nvml:
            raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(process.ctypes, "CDLL", cdll)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning sets it
    assert process.count_gpus_without_missing_nvml() is not nvml
    assert process.os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] == ("1" if nvml else "0")
    monkeypatch.delenv("PYTORCH_NVML_BASED_CUDA_CHECK")  # Lightning not imported: left alone
    assert not process.count_gpus_without_missing_nvml()
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in process.os.environ


def test_set_up_for_job_quiets_the_decoders(monkeypatch):
    """Each entry point relies on set_up_for_job for quiet_decoders: OpenCV's log off and PIL's
    bomb warning ignored, so an unreadable image is reported once, in our own words."""
    for step in ("reuse_freed_memory", "freeze_loaded_objects", "count_gpus_without_missing_nvml"):
        monkeypatch.setattr(process, step, lambda: None)  # process-wide, and tested above
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            set_up_for_job()
            warnings.warn("image size exceeds limit", PIL.Image.DecompressionBombWarning, stacklevel=1)
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
        assert not seen
    finally:
        cv2.utils.logging.setLogLevel(level)
