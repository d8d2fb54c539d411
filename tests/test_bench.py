"""The bench scripts are not run by the tests (they take minutes), but they must at least start:
a name moved in the package would otherwise break them unnoticed."""

import subprocess
import sys

import pytest

from .conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py"))


def test_the_scripts_are_found():  # else the test below would pass on none
    assert {"bench.py", "onnx_inference.py", "onnx_agreement.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_starts(script):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
