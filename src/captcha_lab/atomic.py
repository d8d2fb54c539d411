"""Outputs are replaced whole: written beside their place, then renamed over it (one atomic
os.replace), so a kill or an error mid-write leaves the earlier file as it was (no fsync: a power
loss may still lose the new one)."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path to write; it becomes `path` if the block ends without an error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: DDP ranks may write one file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def writing(path: str | Path, errors: str = "strict") -> Iterator[TextIO]:
    """A UTF-8 text file (newline="" for csv) that replaces `path` once closed."""
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8", errors=errors) as f:
        yield f


def write_text(path: str | Path, text: str) -> None:
    with writing(path) as f:
        f.write(text)


def write_json(path: str | Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
