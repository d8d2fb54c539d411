import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from captcha_lab import synthetic
from captcha_lab.charset import CAPTCHA_V2, REPORT36, Charset
from captcha_lab.data import CaptchaDataModule, split_indices
from captcha_lab.errors import DataError
from captcha_lab.images import printable, read_gray
from captcha_lab.labelled import load_folder
from captcha_lab.synthetic import MANIFEST, ensure_synthetic, set_folder

CHARSET = Charset()


def test_label_round_trip():
    assert CHARSET.decode(CHARSET.encode("2b827")) == "2b827"
    assert Charset(REPORT36).encode("a9") == [0, 35]
    assert CHARSET.unknown("2b8a7") == {"a"}


def _save(path, mode, size=(200, 50)):
    rng = np.random.default_rng(0)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    if mode == "RGBA":
        arr[..., 3] = 255
    Image.fromarray(arr, mode).save(path)
    return arr


@pytest.mark.parametrize("name,mode", [("2b827.png", "RGBA"), ("2b827.jpg", "RGB"), ("2b827.png", "L")])
def test_any_mode_reads_as_gray_50x200(tmp_path, name, mode):
    arr = _save(tmp_path / name, mode)
    img = read_gray(tmp_path / name)
    assert img.shape == (50, 200) and img.dtype == np.uint8
    if mode == "L":
        np.testing.assert_array_equal(img, arr)
    if mode == "RGBA":  # the same gray as cv2's own read of the RGB part (the report's preprocessing)
        expected = cv2.cvtColor(np.ascontiguousarray(arr[..., :3]), cv2.COLOR_RGB2GRAY)
        assert np.abs(img.astype(int) - expected).max() <= 1


def test_wrong_size_is_resized(tmp_path):
    _save(tmp_path / "2b827.png", "L", size=(400, 100))
    assert read_gray(tmp_path / "2b827.png").shape == (50, 200)


def test_bad_labels_skipped_with_one_counted_warning_per_reason(tmp_path, caplog):
    not_utf8 = os.fsdecode(b"ab\xff27.png")  # the log file's UTF-8 cannot hold its surrogate
    for name in ["2b827.png", "ab827.png", "2b8272.png", "2b82.png", "nnnnn.png", not_utf8]:
        _save(tmp_path / name, "L")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        data = load_folder(tmp_path, CHARSET, length=5)
    assert data.names == ["2b827.png", "nnnnn.png"]
    assert data.images.shape == (2, 1, 50, 200) and 0 <= data.images.min() and data.images.max() <= 1
    assert data.targets.tolist()[0] == CHARSET.encode("2b827")
    messages = [r.getMessage() for r in caplog.records]
    assert any("2 file(s) with characters outside the charset: ab827.png, ab\\xff27.png" in m for m in messages)
    assert printable("2b\t82\n7.png") == "2b\\x0982\\x0a7.png"  # predict.py's stdout: one line, 3 fields
    assert any("2 file(s) whose label is not 5 characters long" in m for m in messages)


def test_missing_and_empty_dirs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data folder not found: .*nope"):
        load_folder(tmp_path / "nope", CHARSET, 5)
    with pytest.raises(DataError, match="no image files"):
        load_folder(tmp_path, CHARSET, 5)


def test_split_is_seeded_disjoint_and_sized():
    a, b, c = (split_indices(1070, s, 0.2, 0.1) for s in (0, 0, 1))
    assert [len(a[k]) for k in ("test", "val", "train")] == [107, 193, 770]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["val"], c["val"])
    assert len(torch.cat(list(a.values())).unique()) == 1070


def test_datamodule_test_dir_replaces_held_out_fraction(tiny_dir, tmp_path):
    test_dir = ensure_synthetic(tmp_path / "test", n=10, seed=5)
    dm = CaptchaDataModule(dir=str(tiny_dir), test_dir=str(test_dir), batch_size=8)
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.splits.items()} == {"test": 10, "val": 16, "train": 64}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 50, 200) and x.dtype == torch.float32 and y.shape == (8, 5)


def test_replace_test_keeps_train_and_val_as_split_with_the_held_out_test(tiny_dir, tmp_path):
    dm = CaptchaDataModule(dir=str(tiny_dir))
    dm.setup("fit")
    before = {k: dm.splits[k].targets for k in ("train", "val")}
    dm.replace_test(str(ensure_synthetic(tmp_path / "test", n=10, seed=5)))
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


def test_synthetic_is_deterministic_and_other_settings_get_their_own_folder(tmp_path):
    a = ensure_synthetic(tmp_path / "a", n=5, seed=3)
    b = ensure_synthetic(tmp_path / "b", n=5, seed=3)
    assert a.parent == tmp_path / "a" and a.name.startswith("5x5-seed3-") and a.name == b.name
    names = sorted(p.name for p in a.glob("*.png"))
    assert names == sorted(p.name for p in b.glob("*.png")) and len(names) == 5
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    mtime = (a / MANIFEST).stat().st_mtime_ns
    assert ensure_synthetic(tmp_path / "a", n=5, seed=3) == a  # same settings: untouched
    assert (a / MANIFEST).stat().st_mtime_ns == mtime
    c = ensure_synthetic(tmp_path / "a", n=6, seed=3)  # other settings: beside it, not over it
    assert c != a and len(list(c.glob("*.png"))) == 6
    assert (a / MANIFEST).stat().st_mtime_ns == mtime and len(list(a.glob("*.png"))) == 5


def test_synthetic_characters_sit_where_the_real_sets_do(tmp_path, monkeypatch):
    # synthetic.STYLE: no random spaces between characters, each turned by at most 15 degrees
    drawn, angles = [], []
    draw_character, rotate = synthetic.ImageCaptcha._draw_character, Image.Image.rotate
    monkeypatch.setattr(
        synthetic.ImageCaptcha, "_draw_character", lambda self, c, *a: drawn.append(c) or draw_character(self, c, *a)
    )
    monkeypatch.setattr(
        Image.Image, "rotate", lambda self, angle, *a, **k: angles.append(angle) or rotate(self, angle, *a, **k)
    )
    folder = ensure_synthetic(tmp_path, n=20, seed=0)
    assert len(drawn) == len(angles) == 100 and " " not in drawn
    assert 10 < max(map(abs, angles)) <= 15
    assert json.loads((folder / MANIFEST).read_text())["style"] == synthetic.STYLE


def test_synthetic_set_in_the_old_layout_is_used_and_kept(tmp_path):
    # Before sets had folders of their own, one set sat directly in data.dir (data/synthetic).
    old = ensure_synthetic(tmp_path / "x", n=5, seed=3)
    old.rename(tmp_path / "flat")
    root = tmp_path / "flat"
    assert ensure_synthetic(root, n=5, seed=3) == root  # same settings: read from there
    assert set_folder(root, 5, 3, CAPTCHA_V2, 5, (50, 200)) == root
    other = ensure_synthetic(root, n=5, seed=4)  # e.g. evaluating an older run of another seed
    assert other.parent == root and len(list(other.glob("*.png"))) == 5
    assert len(list(root.glob("*.png"))) == 5


def test_parallel_jobs_making_one_synthetic_set_keep_the_first(tmp_path, monkeypatch):
    real = synthetic.generate

    def another_job_finishes_meanwhile(folder, *args):
        monkeypatch.setattr(synthetic, "generate", real)
        first = ensure_synthetic(tmp_path, n=3, seed=0)
        (first / "being-read").write_text("")  # that job reads its set by now
        real(folder, *args)

    monkeypatch.setattr(synthetic, "generate", another_job_finishes_meanwhile)
    folder = ensure_synthetic(tmp_path, n=3, seed=0)
    assert (folder / "being-read").is_file()  # not replaced under the other job
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # this job's copy cleaned up


def test_synthetic_set_with_an_edited_manifest_is_made_again(tmp_path):
    folder = ensure_synthetic(tmp_path, n=3, seed=0)
    settings = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**settings, "n": 2}))
    (folder / next(folder.glob("*.png")).name).unlink()
    assert ensure_synthetic(tmp_path, n=3, seed=0) == folder
    assert json.loads((folder / MANIFEST).read_text()) == settings and len(list(folder.glob("*.png"))) == 3
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


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


def test_synthetic_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"not made by captcha-lab \(mine.png\).*add data=captcha_v2"):
        ensure_synthetic(tmp_path, n=3)


def test_sweep_aggregate_groups_folds_and_seeds():
    from captcha_lab.sweep import aggregate

    rows = [
        {"overrides": "lr=1e-3 data.fold=0", "val/seq_acc": 0.9, "val/seq_acc_best": 0.95},
        {"overrides": "lr=1e-3 data.fold=1", "val/seq_acc": 0.8, "val/seq_acc_best": 0.85},
        {"overrides": "seed=2 lr=3e-3", "val/seq_acc": 0.93, "val/seq_acc_best": 0.93},
    ]
    best, other = aggregate(rows)  # ranked by the last epoch's val/seq_acc, not the best epoch's
    assert (best["recipe"], best["n"], best["val/seq_acc"]) == ("lr=3e-3", 1, (0.93, 0.0))
    assert other["recipe"] == "lr=1e-3" and other["n"] == 2 and "val/char_acc" not in other
    mean, std = other["val/seq_acc"]
    assert abs(mean - 0.85) < 1e-9 and abs(std - 0.0707) < 1e-3
    assert abs(other["val/seq_acc_best"][0] - 0.9) < 1e-9


def test_sweep_summary_ranks_a_job_that_never_validated_last(tmp_path):
    from captcha_lab.sweep import collect

    for i, score in enumerate([0.2, float("nan"), 0.9, 0.5]):  # NaN: e.g. trainer.limit_val_batches=0
        (tmp_path / f"{i}_job").mkdir()
        (tmp_path / f"{i}_job" / "metrics.json").write_text(json.dumps({"val/seq_acc_best": score}))
    assert [row["job"] for row in collect(tmp_path)] == ["2_job", "3_job", "0_job", "1_job"]


@pytest.mark.parametrize("swept,per_recipe", [("lr", False), ("seed", True)])
def test_sweep_summary_has_a_per_recipe_table_only_for_repeated_recipes(tmp_path, swept, per_recipe):
    from captcha_lab.sweep import write_summary

    for i, value in enumerate([1, 2]):
        job = tmp_path / f"{i}_job"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- {swept}={value}\n")
        (job / "metrics.json").write_text(json.dumps({"val/seq_acc_best": 0.5 + i / 10}))
    assert [r["job"] for r in write_summary(tmp_path)] == ["1_job", "0_job"]
    assert ("Per recipe" in (tmp_path / "summary.md").read_text()) == per_recipe
