"""Image files for the loaders' tests: random pixels, a bomb's PNG header, unreadable files."""

import shutil
import struct
import zlib
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
