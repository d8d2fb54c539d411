"""Image files for the loaders' tests: random pixels, a bomb's PNG header, unreadable files, a
named pipe that cannot hang a test."""

import contextlib
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, mode: str, size: tuple[int, int] = (200, 50)) -> np.ndarray:
    """Random pixels of PIL `mode` and (W, H) `size` saved at `path`; returns them."""
    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    if mode == "RGBA":
        arr[..., 3] = 255
    Image.fromarray(arr, mode).save(path)
    return arr


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming width x height, and one tiny IDAT: a decompression
    bomb's header without its payload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def mixed_copy(tiny_dir: Path, folder: Path) -> Path:
    """`tiny_dir` copied to `folder`, plus a truncated PNG, a zero-byte file, a bomb, a broken link
    and a text file."""
    shutil.copytree(tiny_dir, folder)
    good = sorted(folder.glob("*.png"))
    (folder / "22222.png").write_bytes(good[0].read_bytes()[:200])  # truncated mid-IDAT
    (folder / "33333.png").write_bytes(b"")
    (folder / "44444.png").write_bytes(png_header(8_000, 8_000))
    (folder / "55555.png").symlink_to(folder / "gone.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@contextlib.contextmanager
def named_pipe(path: Path, content: bytes = b"", every_s: float = 1.0) -> Iterator[Path]:
    """A named pipe at `path` for the block. A reader that waits on it (the hang under test) is let
    go every `every_s` by a writer that opens it, writes `content` (under the pipe's 64 KiB) and
    closes it, so that such a test fails instead of hanging: the reader reads `content`."""
    os.mkfifo(path)
    done = threading.Event()

    def release():
        while not done.wait(every_s):
            with contextlib.suppress(OSError):  # ENXIO: nobody is waiting on it
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.write(fd, content)
                finally:
                    os.close(fd)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join()
