"""argparse types the bench scripts share: a bad path fails at start-up in one line, before the
minutes of measuring, not in a traceback mid-run."""

import argparse
import shutil


def executable(path: str) -> str:
    """A peer's Python (a venv outside the repository, e.g. /tmp/tf/bin/python): a path to an
    executable, or a name on PATH."""
    if not shutil.which(path):
        raise argparse.ArgumentTypeError(f"not an executable: {path}")
    return path
