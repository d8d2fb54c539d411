"""argparse types the bench scripts share: a bad path fails at start-up in one line, before the
minutes of measuring, not in a traceback mid-run."""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path


def executable(path: str) -> str:
    """A peer's Python (a venv outside the repository, e.g. /tmp/tf/bin/python): a path to an
    executable, or a name on PATH."""
    if not shutil.which(path):
        raise argparse.ArgumentTypeError(f"not an executable: {path}")
    return path


def existing_file(path: str) -> str:
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return path


def package_version(python: str, package: str) -> str:
    """`package`'s version in `python`'s environment; exits with one line where it is not installed
    (checked before the measuring starts, not when the peer's turn comes)."""
    shown = subprocess.run([python, "-m", "pip", "show", package], capture_output=True, text=True).stdout
    found = re.search(r"^Version: (.+)$", shown, re.MULTILINE)
    if found is None:
        sys.exit(f"error: {package} is not installed for {python}")
    return found.group(1)
