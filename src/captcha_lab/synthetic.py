"""Deterministic synthetic captchas (the `captcha` package) written as a filename-labelled folder,
so the default training run works offline and reads them like any real folder."""

import json
import logging
import random
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from unittest import mock

import captcha.image
from captcha.image import ImageCaptcha

from captcha_lab.errors import DataError

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


class _SeededSecrets:
    """captcha>=0.7 draws from `secrets`, which cannot be seeded; this stands in for it."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq):
        return self._rng.choice(seq)


def _settings(n: int, seed: int, symbols: str, length: int, size: tuple[int, int]) -> dict:
    return dict(
        n=n, seed=seed, symbols=symbols, length=length, height=size[0], width=size[1], captcha=version("captcha")
    )


def generate(folder: Path, n: int, seed: int, symbols: str, length: int, size: tuple[int, int]) -> None:
    if n > len(symbols) ** length:
        raise ValueError(f"cannot make {n} distinct {length}-symbol labels from {symbols!r}")
    rng = random.Random(seed)
    labels: dict[str, None] = {}  # ordered set: every label once, since the file name is the label
    while len(labels) < n:
        labels["".join(rng.choices(symbols, k=length))] = None
    generator = ImageCaptcha(width=size[1], height=size[0])
    with mock.patch.object(captcha.image, "secrets", _SeededSecrets(seed)):
        for label in labels:
            generator.write(label, str(folder / f"{label}.png"), format="png")


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(
            f"{path}: not a captcha-lab manifest (unreadable JSON); delete the folder to regenerate it"
        ) from None


def ensure_synthetic(
    folder: str | Path,
    n: int = 1040,
    seed: int = 0,
    symbols: str = "2345678bcdefgmnpwxy",
    length: int = 5,
    size: tuple[int, int] = (50, 200),
) -> Path:
    """Generate the set once; regenerate only when it is missing or its settings changed."""
    folder = Path(folder)
    settings = _settings(n, seed, symbols, length, size)
    manifest = folder / MANIFEST
    if manifest.is_file() and _read_manifest(manifest) == settings:
        return folder
    if folder.exists() and not manifest.is_file() and any(folder.iterdir()):
        raise DataError(f"{folder} holds files not made by captcha-lab; choose another data.dir")
    log.info("generating %d synthetic captchas into %s", n, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and swap in whole, so an interrupted run never leaves half a set.
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        generate(tmp, n, seed, symbols, length, size)
        (tmp / MANIFEST).write_text(json.dumps(settings, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
