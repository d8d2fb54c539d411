"""Synthetic captchas: deterministic, real-set style, a folder per settings, safe in parallel."""

import json

import pytest
from PIL import Image

from captcha_lab.data import synthetic
from captcha_lab.data.synthetic import MANIFEST, ensure_synthetic
from captcha_lab.errors import DataError


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


def test_synthetic_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"not made by captcha-lab \(mine.png\).*add data=captcha_v2"):
        ensure_synthetic(tmp_path, n=3)


def test_each_seed_draws_its_own_labels_and_images_and_the_set_is_readable_by_all(tmp_path):
    """A seed that changed the labels alone would train a sweep's seeds on the same pictures, so
    one symbol in one place: every seed makes the one label "7", and only the drawing can differ."""

    def pictures(root, seed, **kw):
        folder = ensure_synthetic(tmp_path / root, seed=seed, **kw)
        return folder, {p.name: p.read_bytes() for p in folder.glob("*.png")}

    folder, zero = pictures("a", 0, n=1, symbols="7", length=1)
    assert list(zero) == ["7.png"] and pictures("b", 0, n=1, symbols="7", length=1)[1] == zero
    assert pictures("c", 1, n=1, symbols="7", length=1)[1]["7.png"] != zero["7.png"]
    assert pictures("d", 0, n=3)[1].keys() != pictures("e", 1, n=3)[1].keys()
    # mkdtemp makes the set 0700: other users of a shared data dir could not read it.
    assert folder.stat().st_mode & 0o777 == 0o755
