import hashlib
import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from captcha_lab.data import inferred
from captcha_lab.data.charset import CAPTCHA_V2, Charset, check_symbols
from captcha_lab.data.images import CHANNELS, IMAGE_SIZE
from captcha_lab.data.labelled import LabelledImages, load_folder, scan_labels
from captcha_lab.data.labels import CONVENTIONS, warn_skipped
from captcha_lab.data.synthetic import ensure_synthetic, set_folder
from captcha_lab.errors import ConfigError, DataError

log = logging.getLogger(__name__)
SYNTHETIC_LENGTH = 5  # generated labels, where data.length is null: captcha_v2's
# Every image is kept in memory at this size: far past any captcha's, a typo (100000) would take
# the machine's memory before the first epoch instead of failing here.
MAX_SIDE = 2048
MAX_SEED = 2**32 - 1  # NumPy's and Lightning's seeds


def split_indices(
    n: int, seed: int, val_fraction: float, test_fraction: float, folds: int = 0, fold: int = 0
) -> dict[str, torch.Tensor]:
    """Seeded disjoint train/val/test indices: test first (the report's 100 of 1070), then val
    out of the rest (Keras's validation_split), or with `folds` > 1 the `fold`-th of that many
    equal parts of the rest (k-fold cross-validation: the same seed gives the same partition)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * test_fraction)
    test, rest = perm[:n_test], perm[n_test:]
    if folds > 1:
        parts = torch.tensor_split(rest, folds)
        train = torch.cat([p for i, p in enumerate(parts) if i != fold])
        return {"test": test, "val": parts[fold], "train": train}
    n_val = round(len(rest) * val_fraction)
    return {"test": test, "val": rest[:n_val], "train": rest[n_val:]}


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


class CaptchaDataModule(L.LightningDataModule):
    """Any folder of labelled captchas (labels: see data.labels), decoded once and held in memory
    as tensors.

    `synthetic > 0` first generates that many captchas into a folder of their own inside `dir`
    (once, from `synthetic_seed`: `seed` draws the split, so a seed sweep trains on one set)."""

    def __init__(
        self,
        dir: str = "data/captcha_v2",
        symbols: str = CAPTCHA_V2,
        labels: str = "auto",
        length: int | None = None,
        max_length: int | None = None,
        height: int = IMAGE_SIZE[0],
        width: int | None = None,
        channels: int = 1,
        test_dir: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.1,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        seed: int = 0,
        synthetic: int = 0,
        synthetic_seed: int = 0,
        num_workers: int = 0,
        folds: int = 0,
        fold: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_settings(self.hparams)
        self.splits: dict[str, LabelledImages] = {}
        self.source: dict = {}  # which images were split (set by setup)
        self.found: dict[Path, str] | None = None  # dir's labels, scanned once
        self._infer()

    def _infer(self) -> None:
        """Alphabet, label lengths and input size: as set, or (null, charset=auto) from dir's labels
        and images, before any net is built (its classes, heads and input depend on them)."""
        hp = self.hparams
        explicit = hp.symbols != inferred.AUTO
        sizes = {}
        if not hp.synthetic and not (explicit and hp.length is not None and hp.width is not None):
            found = scan_labels(hp.dir, hp.labels)
            sizes = inferred.header_sizes(found)
            self.found = self._readable(found, sizes)
        self.charset = Charset(hp.symbols if explicit else inferred.alphabet(self.found))
        # As the system's: Lightning logs both (hparams_initial), and refuses two values of one key.
        self.save_hyperparameters({**hp, "symbols": self.charset.symbols})
        self.length, longest = self._lengths()
        self.max_length = hp.max_length or longest
        if self.length > self.max_length:  # data.length=null: the shortest label, found only now
            where = "data.synthetic's label length" if hp.synthetic else f"the shortest label in {hp.dir}"
            raise ConfigError(f"data.max_length={self.max_length} is below data.length={self.length} ({where})")
        width = hp.width or (4 * hp.height if hp.synthetic else inferred.width_for(sizes.values(), hp.height))
        if width > MAX_SIDE:  # the folder's median aspect (synthetic: 4:1), at data.height
            aspect = "4:1 of synthetic captchas" if hp.synthetic else "images' aspect"
            raise ConfigError(f"data.width: the {aspect} gives {width} pixels at data.height={hp.height}, over "
                              f"{MAX_SIDE}; set data.width")  # fmt: skip
        self.image_size = (hp.height, width)
        lengths = f"{self.length}" if self.length == self.max_length else f"{self.length} to {self.max_length}"
        log.info(
            "data: alphabet %r (%d symbols%s), labels of %s symbols, images %dx%d (HxW), %s",
            self.charset.symbols,
            len(self.charset),
            "" if explicit else ", from the labels",
            lengths,
            *self.image_size,
            "grayscale" if hp.channels == 1 else "RGB",
        )

    def _readable(self, found: dict[Path, str], sizes: dict[Path, tuple[int, int]]) -> dict[Path, str]:
        """The labelled files whose header reads (`sizes`): what is inferred from and decoded. A
        stray non-image (macOS's `._name.png`) would otherwise add its name's symbols and length."""
        unreadable = [p.name for p in found if p not in sizes]
        warn_skipped("that could not be read", unreadable)
        if found and len(unreadable) == len(found):
            raise DataError(f"no usable captcha images in {self.hparams.dir}: none of its {len(found)} can be read")
        return {p: label for p, label in found.items() if p in sizes}

    def _lengths(self) -> tuple[int, int]:
        """data.length, or (null) the shortest and longest label the alphabet can write."""
        hp = self.hparams
        if hp.length is not None or hp.synthetic:
            return (hp.length or SYNTHETIC_LENGTH,) * 2
        writable = {p: t for p, t in self.found.items() if not self.charset.unknown(t)}
        if not writable:
            raise DataError(f"{hp.dir}: no label can be written with the symbols {self.charset.symbols!r}")
        return inferred.lengths(writable)

    def _synthetic(self) -> tuple:
        hp = self.hparams
        return hp.dir, hp.synthetic, hp.synthetic_seed, hp.symbols, self.length, IMAGE_SIZE

    def prepare_data(self) -> None:
        if self.hparams.synthetic:
            ensure_synthetic(*self._synthetic())

    @property
    def folder(self) -> str:
        """The images' folder: `dir`, or with `synthetic` the set's own folder inside it."""
        return str(set_folder(*self._synthetic())) if self.hparams.synthetic else self.hparams.dir

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return  # decoded once per process, whatever the stage
        hp, folder = self.hparams, self.folder
        data = self._read(folder)
        # The split permutes these names in this order: with the seed and fractions (the
        # checkpoint's data settings) they decide it, so a checkpoint keeps them (state_dict).
        digest = hashlib.sha1("\n".join(data.names).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.source = {"images": len(data), "names_sha1": digest}
        test_fraction = 0.0 if hp.test_dir else hp.test_fraction
        idx = split_indices(len(data), hp.seed, hp.val_fraction, test_fraction, hp.folds, hp.fold)
        self.splits = {name: data.subset(i) for name, i in idx.items()}
        if hp.test_dir:
            if Path(hp.test_dir).resolve() == Path(folder).resolve():  # as the report's Keras script scores
                log.warning("data.test_dir is %s, the folder it trains on: test/ scores its training images", folder)
            self.splits["test"] = self._read(hp.test_dir, test=True)
        if len(self.splits["train"]) == 0:
            raise DataError(f"{folder}: {len(data)} usable images leave none for training")
        if len(self.splits["val"]) == 0:  # no best.ckpt would be written, and the val bests be NaN
            setting = f"data.folds={hp.folds}" if hp.folds else f"data.val_fraction={hp.val_fraction}"
            raise DataError(f"{folder}: {len(data)} usable images leave none for validation at {setting}")
        log.info("data %s: %s", folder, ", ".join(f"{k} {len(v)}" for k, v in self.splits.items()))

    def state_dict(self) -> dict:
        return dict(self.source)  # Lightning stores it under the class name (training.resume.images_changed)

    def _read(self, folder: str, test: bool = False) -> LabelledImages:
        """`test`: a test folder of its own, whose labels may hold symbols that the training
        folder's do not (each such image a misread)."""
        hp = self.hparams
        found = self.found if folder == hp.dir else None
        return load_folder(
            folder, self.charset, self.length, self.image_size, self.max_length, hp.labels, hp.channels, found, test
        )

    def replace_test(self, folder: str) -> None:
        """After setup: `folder`'s images as the test split, train and val left as they were split
        (eval.py scoring another test set for a run that held out part of its folder)."""
        check_folder("test_dir", folder)
        self.splits["test"] = self._read(folder, test=True)
        log.info("test split replaced: %d images from %s", len(self.splits["test"]), folder)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        data = self.splits[split]
        return DataLoader(
            TensorDataset(data.images, data.targets),
            batch_size=self.hparams.batch_size if train else self.hparams.eval_batch_size,
            shuffle=train,
            num_workers=self.hparams.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def has_split(self, split: str) -> bool:
        return len(self.splits.get(split, ())) > 0
