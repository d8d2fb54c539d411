"""Deterministic synthetic captchas (the `captcha` package) written as a filename-labelled folder,
so the default training run works offline and reads them like any real folder."""

import hashlib
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
# The real set has no spaces between characters and turns them only slightly, and the report's
# net reads each character's place with a head of its own: the package's defaults (a space
# before half the characters, turns up to 30 degrees) move a character by more than its width,
# and that net learns nothing from them (docs/accuracy.md). word_space_probability is the chance
# of *no* space (the package adds one above it).
STYLE = {"word_space_probability": 1.0, "character_rotate": [-15, 15]}  # lists: JSON keeps them


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
        n=n,
        seed=seed,
        symbols=symbols,
        length=length,
        height=size[0],
        width=size[1],
        captcha=version("captcha"),
        style=STYLE,
    )


def generate(folder: Path, n: int, seed: int, symbols: str, length: int, size: tuple[int, int]) -> None:
    if n > len(symbols) ** length:
        raise ValueError(f"cannot make {n} distinct {length}-symbol labels from {symbols!r}")
    rng = random.Random(seed)
    labels: dict[str, None] = {}  # ordered set: every label once, since the file name is the label
    while len(labels) < n:
        labels["".join(rng.choices(symbols, k=length))] = None
    generator = ImageCaptcha(width=size[1], height=size[0])
    for name, value in STYLE.items():
        setattr(generator, name, value)
    with mock.patch.object(captcha.image, "secrets", _SeededSecrets(seed)):
        for label in labels:
            generator.write(label, str(folder / f"{label}.png"), format="png")


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(
            f"{path}: not a captcha-lab manifest (unreadable JSON); delete it and the images beside it"
            " to regenerate them"
        ) from None


def set_folder(root: str | Path, n: int, seed: int, symbols: str, length: int, size: tuple[int, int]) -> Path:
    """Where the set with these settings lives under `root`: a folder of its own, named after
    them, so that sets of other settings (another seed or length, a sweep over them) never
    replace each other."""
    return _folder(Path(root), _settings(n, seed, symbols, length, size))


def _folder(root: Path, settings: dict) -> Path:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return root / f"{settings['n']}x{settings['length']}-seed{settings['seed']}-{digest}"


def _check_root(root: Path) -> None:
    """Refuse a root holding anything but captcha-lab's sets (e.g. a real dataset's images)."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if not entry.name.startswith(".") and not (entry / MANIFEST).is_file():
            raise DataError(
                f"{root} holds files not made by captcha-lab ({entry.name}), and synthetic captchas "
                "are generated into data.dir: choose another one, or add data=captcha_v2 to train on these"
            )


def ensure_synthetic(
    root: str | Path,
    n: int = 1040,
    seed: int = 0,
    symbols: str = "2345678bcdefgmnpwxy",
    length: int = 5,
    size: tuple[int, int] = (50, 200),
) -> Path:
    """The set's folder under `root` (see set_folder), generated there once."""
    root = Path(root)
    settings = _settings(n, seed, symbols, length, size)
    folder = _folder(root, settings)
    if _made(folder, settings):
        return folder
    _check_root(root)
    log.info("generating %d synthetic captchas into %s", n, folder)
    try:  # the set is built next to its folder and swapped in whole: never half a set
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    except OSError as e:  # e.g. a file, a path under one, or where this user may not write
        raise DataError(f"{root}: cannot make a folder for synthetic captchas there ({e.strerror})") from None
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the set from other users of a shared data dir
        generate(tmp, n, seed, symbols, length, size)
        (tmp / MANIFEST).write_text(json.dumps(settings, indent=1))
        _swap_in(tmp, folder, settings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _swap_in(new: Path, folder: Path, settings: dict) -> None:
    """Rename `new` to `folder`. A rename fails on a folder that is already there (POSIX), so of
    parallel jobs making the same set (a joblib sweep) the first one's stays, and the others,
    which may be reading it already, never delete it."""
    try:
        new.rename(folder)
    except OSError:
        if _made(folder, settings):  # by a parallel job, meanwhile
            return
        # Its manifest was edited (the folder's name is its settings' digest): set it aside first.
        stale = new.with_name(new.name + "-stale")
        folder.rename(stale)
        new.rename(folder)
        shutil.rmtree(stale)


def _made(folder: Path, settings: dict) -> bool:
    manifest = folder / MANIFEST
    return manifest.is_file() and _read_manifest(manifest) == settings
