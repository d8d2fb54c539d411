"""The data module: seeded splits, a test folder, empty splits refused, one synthetic set per
sweep, the names' digest, shuffled training batches."""

import logging
import shutil
from pathlib import Path

import pytest
import torch

from captcha_lab.data.datamodule import CaptchaDataModule, split_indices
from captcha_lab.data.synthetic import MANIFEST, ensure_synthetic
from captcha_lab.errors import DataError

from .image_files import named_pipe, save


def test_split_is_seeded_disjoint_and_sized():
    a, b, c = (split_indices(1070, s, 0.2, 0.1) for s in (0, 0, 1))
    assert [len(a[k]) for k in ("test", "val", "train")] == [107, 193, 770]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["val"], c["val"])
    assert len(torch.cat(list(a.values())).unique()) == 1070


def test_same_seed_same_split_other_seed_other_split(tiny_dir):
    def val_names(seed):
        dm = CaptchaDataModule(dir=str(tiny_dir), seed=seed)
        dm.setup("fit")
        return dm.splits["val"].names

    assert val_names(0) == val_names(0)
    assert val_names(0) != val_names(1)


def test_a_named_pipe_among_the_images_is_skipped_not_waited_on(tiny_dir, tmp_path, caplog):
    folder = tmp_path / "set"
    shutil.copytree(tiny_dir, folder)
    image = next(folder.glob("*.png")).read_bytes()  # what the pipe gives a reader that waits on it
    with named_pipe(folder / "22222.png", image), caplog.at_level(logging.WARNING):
        dm = CaptchaDataModule(dir=str(folder))  # data.width=null: every header is read first
        dm.setup("fit")
    assert sum(len(split) for split in dm.splits.values()) == 80
    assert "skipped 1 file(s) that could not be read: 22222.png" in caplog.text


@pytest.fixture(scope="module")
def test_set(tmp_path_factory) -> Path:
    """10 captchas of another seed, as a separate test folder."""
    return ensure_synthetic(tmp_path_factory.mktemp("test"), n=10, seed=5)


def test_datamodule_test_dir_replaces_held_out_fraction(tiny_dir, test_set):
    dm = CaptchaDataModule(dir=str(tiny_dir), test_dir=str(test_set), batch_size=8)
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"test": 10, "val": 16, "train": 64}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 50, 200) and x.dtype == torch.float32 and y.shape == (8, 5)


def test_test_dir_equal_to_dir_is_scored_with_a_warning(tiny_dir, caplog):
    # bench.py scores the training folder, as the report's Keras script does; a user is told so.
    dm = CaptchaDataModule(dir=str(tiny_dir), test_dir=f"{tiny_dir}/.", batch_size=8)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert len(dm.splits["test"]) == 80
    assert f"data.test_dir is {tiny_dir}, the folder it trains on" in caplog.text


def test_replace_test_keeps_train_and_val_as_split_with_the_held_out_test(tiny_dir, test_set, tmp_path):
    dm = CaptchaDataModule(dir=str(tiny_dir))
    dm.setup("fit")
    before = {k: dm.splits[k].targets for k in ("train", "val")}
    dm.replace_test(str(test_set))
    assert {k: len(v) for k, v in dm.splits.items()} == {"test": 10, "val": 14, "train": 58}
    assert all(torch.equal(dm.splits[k].targets, v) for k, v in before.items())
    with pytest.raises(DataError, match=f"^data.test_dir: data folder not found: {tmp_path}/nope$"):
        dm.replace_test(str(tmp_path / "nope"))
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(DataError, match=f"^data.test_dir: is a file, not a folder of images: {tmp_path}/notes.txt$"):
        dm.replace_test(str(tmp_path / "notes.txt"))


@pytest.mark.parametrize(
    "settings, named",
    [({"val_fraction": 0.001}, "data.val_fraction=0.001"), ({"folds": 79, "fold": 78}, "data.folds=79")],
)
def test_an_empty_validation_split_is_refused(tiny_dir, settings, named):
    dm = CaptchaDataModule(dir=str(tiny_dir), test_fraction=0.05, **settings)  # 76 images left
    with pytest.raises(DataError, match=f"^{tiny_dir}: 80 usable images leave none for validation at {named}$"):
        dm.setup("fit")


def test_seed_sweep_shares_one_synthetic_set(tmp_path):
    # `seed` draws the split; the set has its own seed, so jobs of a seed sweep neither regenerate
    # it one after another nor delete it under each other.
    def prepare(**kw):
        dm = CaptchaDataModule(dir=str(tmp_path / "s"), synthetic=6, **kw)
        dm.prepare_data()
        return dm.folder, (Path(dm.folder) / MANIFEST).stat().st_mtime_ns

    first = prepare(seed=0)
    assert prepare(seed=1) == first
    assert prepare(seed=1, synthetic_seed=1)[0] != first[0]
    assert prepare(seed=2) == first  # the other set did not replace it


def names_digest(folder: Path) -> str:
    dm = CaptchaDataModule(dir=str(folder), length=5, width=200)
    dm.setup("fit")
    assert dm.source["images"] == 12
    return dm.source["names_sha1"]


@pytest.mark.parametrize("old, new", [("2b2c2", "2b2c3"), ("7b7c7", "7b7c8"), ("x6y6w", "x6y6x")])
def test_names_sha1_changes_when_one_image_is_swapped_for_another_name(tmp_path, old, new):
    """A checkpoint resumes on the split only if the folder holds the same names: a count alone,
    or some of the names, would pass a folder whose split has moved under it. Each swap keeps the
    sorted order and the symbols, and changes one place: the first, a middle, the last."""
    labels = [f"{d}b{d}c{d}" for d in "2345678"] + [f"x{d}y{d}w" for d in "23456"]
    folder = tmp_path / "set"
    folder.mkdir()
    for label in labels:
        save(folder / f"{label}.png", "L")
    before = names_digest(folder)
    assert names_digest(folder) == before
    (folder / f"{old}.png").rename(folder / f"{new}.png")
    assert names_digest(folder) != before


def test_training_batches_are_shuffled_and_evaluation_batches_are_not(tiny_dir):
    """Batches in one fixed order every epoch train worse. Shuffling val/test would change no
    score but draw from the RNG that seeds training's shuffles (Lightning warns of it)."""
    dm = CaptchaDataModule(dir=str(tiny_dir), batch_size=8, eval_batch_size=4)
    dm.setup("fit")

    def order(loader):
        return torch.cat([y for _, y in loader])

    torch.manual_seed(0)
    train = dm.splits["train"].targets
    first, second = order(dm.train_dataloader()), order(dm.train_dataloader())
    assert not torch.equal(first, train) and not torch.equal(first, second)  # another order each epoch
    assert sorted(map(tuple, first.tolist())) == sorted(map(tuple, train.tolist()))  # every image once
    assert torch.equal(order(dm.val_dataloader()), dm.splits["val"].targets)
    assert torch.equal(order(dm.test_dataloader()), dm.splits["test"].targets)
