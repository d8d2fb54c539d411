import hashlib
import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from captcha_lab.data import inferred
from captcha_lab.data.charset import CAPTCHA_V2, Charset
from captcha_lab.data.images import IMAGE_SIZE
from captcha_lab.data.labelled import LabelledImages, load_folder, scan_labels
from captcha_lab.data.labels import warn_skipped
from captcha_lab.data.settings import MAX_SIDE, SYNTHETIC_LENGTH, check_folder, check_settings
from captcha_lab.data.synthetic import ensure_synthetic, set_folder
from captcha_lab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


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
