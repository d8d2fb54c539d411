"""ruff's lint rules and format (pyproject.toml's [tool.ruff]) hold over the tree, so CI refuses a
change that breaks them, as `make lint` would."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("args", [["check", "--no-cache"], ["format", "--check", "--no-cache"]])
def test_ruff_is_clean(args):
    done = subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")  # unused import (F401)
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "F401" in done.stdout
