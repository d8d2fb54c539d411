"""serve.py's process: it starts only with a valid config and a current export (else one line,
exit status 2), and SIGTERM answers the requests in flight before it exits 0."""

import base64
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import httpx
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from captcha_lab.cli.serve import run

from ..conftest import ROOT
from .conftest import Served


def test_sigterm_answers_the_requests_in_flight_then_exits_0(tiny_ckpt, reader, images, tmp_path):
    # Batches wait up to 1 s for more requests: the four below, sent together, are still queued
    # at SIGTERM.
    served = Served(tiny_ckpt, tmp_path / "serve.log", "batching.max_wait_ms=1000")
    together = threading.Barrier(4)

    def send(blob: bytes) -> httpx.Response:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            together.wait(timeout=20)
            return client.post("/predict", json={"images": [base64.b64encode(blob).decode()]})

    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(send, images[:4])
        deadline = time.monotonic() + 20
        while served.client.get("/health").json()["queued"] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert served.stop() == 0
        answers = list(answers)
    assert [a.json()["results"][0]["text"] for a in answers] == [p.text for p in reader.predict(images[:4])]
    log = served.log.read_text()
    assert "Shutting down" in log and "Traceback" not in log


@pytest.fixture
def serve_cfg():
    """conf/serve.yaml composed with overrides, as serve.py would compose it."""

    def make(*overrides: str):
        GlobalHydra.instance().clear()
        if not any(o.startswith("port=") for o in overrides):  # not serve.yaml's 8000: it may be taken
            overrides = ("port=0", *overrides)
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            return compose("serve", overrides=list(overrides))

    yield make
    GlobalHydra.instance().clear()


def refusal(cfg, capsys) -> str:
    """serve.py's run on `cfg`, which must stop before serving: its one line on stderr."""
    with mock.patch("uvicorn.Server.run", side_effect=AssertionError("it served")), pytest.raises(SystemExit) as end:
        run(cfg)
    assert end.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def copied_run(tiny_ckpt, tmp_path):
    """The tiny run's best.ckpt and best.onnx, copied: free to change."""
    for name in ("best.ckpt", "best.onnx"):
        shutil.copy(tiny_ckpt.with_name(name), tmp_path / name)
    return tmp_path / "best.ckpt"


def test_a_stale_export_is_refused_in_one_line(copied_run, serve_cfg, capsys):
    with open(copied_run, "ab") as f:  # the checkpoint has changed since its export
        f.write(b"\0")
    assert f"is not the export of {copied_run} as it is now" in refusal(serve_cfg(f"ckpt_path={copied_run}"), capsys)


def test_a_missing_export_is_refused_in_one_line(copied_run, serve_cfg, capsys):
    copied_run.with_suffix(".onnx").unlink()
    line = refusal(serve_cfg(f"ckpt_path={copied_run}"), capsys)
    assert line.startswith(f"error: no ONNX export at {copied_run.with_suffix('.onnx')}; export it:")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([], "error: ckpt_path is required"),
        (["ckpt_path=nowhere.ckpt"], "error: ckpt_path: no checkpoint file at nowhere.ckpt"),
        (["ckpt_path=run/best.onnx"], "error: ckpt_path: run/best.onnx is an ONNX export; pass its .ckpt"),
        (["port=abc"], "error: port: Value 'abc' of type 'str' could not be converted to Integer"),
        (["port=70000"], "error: port must be in [0, 65535], got 70000"),
        (["batching.max_batch=0"], "error: batching.max_batch must be in [1, 4096], got 0"),
        (["batching=5"], "error: batching is a group of settings (batching.KEY=VALUE), got 5"),
        (["+limits.max_files=3"], "error: limits.max_files: Key 'max_files' not in 'LimitsConfig'"),
        (["+prot=1"], "error: prot: no such key"),
        (["host="], "error: host is empty; name an address (127.0.0.1, or 0.0.0.0 for every interface)"),
    ],
)
def test_a_bad_config_is_refused_in_one_line(tiny_ckpt, serve_cfg, capsys, overrides, message):
    if overrides and not overrides[0].startswith("ckpt_path"):
        overrides = [f"ckpt_path={tiny_ckpt}", *overrides]
    assert refusal(serve_cfg(*overrides), capsys).startswith(message)


def test_a_port_in_use_is_refused_in_one_line(tiny_ckpt, serve_cfg, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:  # loopback only
        port = taken.getsockname()[1]
        line = refusal(serve_cfg(f"ckpt_path={tiny_ckpt}", f"port={port}"), capsys)
    assert line.startswith(f"error: port: cannot listen on 127.0.0.1:{port} (Address already in use)")


def test_the_script_exits_2_with_one_line_on_a_stale_export(copied_run):
    with open(copied_run, "ab") as f:
        f.write(b"\0")
    done = subprocess.run(
        [sys.executable, "serve.py", f"ckpt_path={copied_run}", "port=0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and "export it again" in done.stderr
