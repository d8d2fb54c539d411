"""serve.py as a user starts it: a real process on a free loopback port (port=0: uvicorn's log
line names the port), serving the tiny run's export, stopped by SIGTERM."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from captcha_lab.inference.onnx_backend import OnnxPredictor
from captcha_lab.inference.onnx_format import onnx_path

from ..conftest import ROOT

# Small limits, so that going over each one is a small request.
LIMITS = {"max_images": 4, "max_body_bytes": 200_000, "max_pixels": 20_000}
START_S = 60  # a loaded machine (CI) can take this long to import and bind


class Served:
    def __init__(self, ckpt: Path, log: Path, *overrides: str):
        self.log = log
        args = [f"ckpt_path={ckpt}", "port=0", *overrides]
        self.process = subprocess.Popen(
            [sys.executable, "serve.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w")
        )
        deadline = time.monotonic() + START_S
        while not (found := re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        self.url = found.group(1)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed if it hangs: a test must not)."""
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def reader(tiny_ckpt) -> OnnxPredictor:
    """What predict.py reads this checkpoint with (its export on ONNX Runtime)."""
    return OnnxPredictor.from_file(onnx_path(tiny_ckpt), checkpoint=tiny_ckpt)


@pytest.fixture(scope="session")
def images(tiny_dir) -> list[bytes]:
    """16 distinct PNG files, encoded."""
    return [p.read_bytes() for p in sorted(tiny_dir.glob("*.png"))[:16]]


@pytest.fixture(scope="session")
def server(tiny_ckpt, tmp_path_factory):
    """One server for the API tests: small limits, and batches that wait 20 ms for more requests."""
    limits = [f"limits.{key}={value}" for key, value in LIMITS.items()]
    served = Served(tiny_ckpt, tmp_path_factory.mktemp("serve") / "serve.log", "batching.max_wait_ms=20", *limits)
    yield served
    assert served.stop() == 0, served.log.read_text()
