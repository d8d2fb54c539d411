"""The data.* settings' checks: one line naming the key, before any image is read or any run
starts."""

from pathlib import Path

from captcha_lab.data import inferred
from captcha_lab.data.charset import check_symbols
from captcha_lab.data.images import CHANNELS
from captcha_lab.data.labels import CONVENTIONS
from captcha_lab.errors import ConfigError, DataError

SYNTHETIC_LENGTH = 5  # generated labels, where data.length is null: captcha_v2's
# Every image is kept in memory at this size: far past any captcha's, a typo (100000) would take
# the machine's memory before the first epoch instead of failing here.
MAX_SIDE = 2048
MAX_SEED = 2**32 - 1  # NumPy's and Lightning's seeds


def check_types(hp: dict) -> None:
    ints = [
        "height",
        "batch_size",
        "eval_batch_size",
        "seed",
        "synthetic",
        "synthetic_seed",
        "folds",
        "fold",
        "num_workers",
        "channels",
    ]
    for key in ints + [k for k in ("length", "max_length", "width") if hp[k] is not None]:
        if not isinstance(hp[key], int) or isinstance(hp[key], bool):
            raise ConfigError(f"data.{key} must be an integer, got {hp[key]!r}")
    for key in ("val_fraction", "test_fraction"):
        if not isinstance(hp[key], int | float) or isinstance(hp[key], bool):
            raise ConfigError(f"data.{key} must be a number, got {hp[key]!r}")
    if not isinstance(hp["symbols"], str):  # Hydra and YAML read 0123456789 as a number
        raise ConfigError(
            f"charset.symbols must be a string, got {hp['symbols']!r}: quote digits, charset.symbols=\"'0123456789'\""
        )
    if hp["symbols"] != inferred.AUTO:  # eval.py's are the checkpoint's, a blank included (charset=auto)
        check_symbols(hp["symbols"], blanks=False)


def check_settings(hp: dict) -> None:
    """One line naming the data.* key, before any data is read (types first: comparing a string
    would fail with a TypeError that names nothing)."""
    check_types(hp)
    if hp["labels"] not in CONVENTIONS:
        raise ConfigError(f"data.labels must be one of {', '.join(CONVENTIONS)}, got {hp['labels']!r}")
    if not 0 < hp["val_fraction"] < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {hp['val_fraction']}")
    if not 0 <= hp["test_fraction"] < 1:
        raise ConfigError(f"data.test_fraction must be in [0, 1), got {hp['test_fraction']}")
    for key in ("batch_size", "eval_batch_size", "length", "max_length"):
        if hp[key] is not None and hp[key] < 1:
            raise ConfigError(f"data.{key} must be >= 1, got {hp[key]}")
    length, max_length, folds, fold = hp["length"], hp["max_length"], hp["folds"], hp["fold"]
    if max_length is not None and length is not None and max_length < length:
        raise ConfigError(f"data.max_length must be >= data.length ({length}), got {max_length}")
    check_geometry(hp)
    if folds == 1 or folds < 0:
        raise ConfigError(f"data.folds must be 0 (one split) or at least 2, got {folds}")
    if fold and folds < 2:  # it would be ignored: every "fold" the same split
        raise ConfigError(f"data.fold={fold} needs data.folds > 1 (k-fold cross-validation), got {folds}")
    if folds and not 0 <= fold < folds:
        raise ConfigError(f"data.fold must be in [0, data.folds={folds}), got {fold}")
    for key in ("seed", "synthetic_seed"):  # data.seed= overrides the top-level seed's own check
        if not 0 <= hp[key] <= MAX_SEED:
            raise ConfigError(f"data.{key} must be in [0, {MAX_SEED}], got {hp[key]}")
    if hp["num_workers"] < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {hp['num_workers']}")
    if hp["synthetic"] < 0:
        raise ConfigError(f"data.synthetic must be >= 0, got {hp['synthetic']}")
    if hp["synthetic"]:
        check_synthetic(hp)
    # Here, not when setup() reads them: before the Trainer and its logger start a run for nothing.
    folders = {"test_dir": hp["test_dir"]} | ({} if hp["synthetic"] else {"dir": hp["dir"]})
    for key, folder in folders.items():
        if folder is not None:
            check_folder(key, folder)


def check_geometry(hp: dict) -> None:
    if not 8 <= hp["height"] <= MAX_SIDE:
        raise ConfigError(f"data.height must be 8 to {MAX_SIDE} pixels, got {hp['height']}")
    if hp["width"] is not None and not 8 <= hp["width"] <= MAX_SIDE:
        raise ConfigError(
            f"data.width must be 8 to {MAX_SIDE} pixels or null (from the images' aspect), got {hp['width']}"
        )
    if hp["channels"] not in CHANNELS:
        raise ConfigError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {hp['channels']!r}")


def check_synthetic(hp: dict) -> None:
    """Generated captchas need their alphabet named: there are no labels to read it from."""
    symbols, length = hp["symbols"], hp["length"] or SYNTHETIC_LENGTH
    if symbols == inferred.AUTO:
        raise ConfigError(
            "charset: data.synthetic generates captchas, so name their alphabet (e.g. charset=captcha_v2)"
        )
    if hp["synthetic"] > len(symbols) ** length:  # file names are labels: each one once
        raise ConfigError(
            f"data.synthetic: {hp['synthetic']} captchas need as many distinct labels, but "
            f"{len(symbols)} symbols make only {len(symbols) ** length} of length {length}"
        )


def check_folder(key: str, folder: str) -> None:
    if folder == "":  # Path("") is the current folder
        raise DataError(f"data.{key} is empty; name a folder of images")
    if not Path(folder).is_dir():
        what = "is a file, not a folder of images" if Path(folder).exists() else "data folder not found"
        raise DataError(f"data.{key}: {what}: {folder}")
