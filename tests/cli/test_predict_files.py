"""predict.py's inputs and CSV output: globs and their order, names that are not UTF-8 or that stdout
cannot encode, and outputs it refuses (no .csv, the checkpoint, an input, a run's or eval's own file)."""

import contextlib
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from omegaconf import OmegaConf

from captcha_lab.cli.predict import InputError, expand_inputs, run
from captcha_lab.data.charset import CAPTCHA_V2
from captcha_lab.models.crnn import CRNN

from ..data.image_files import named_pipe


def test_expand_inputs_order_and_errors(tmp_path, tiny_dir):
    files = sorted(tiny_dir.glob("*.png"))
    assert expand_inputs(str(tiny_dir)) == files
    assert expand_inputs(str(tiny_dir / "2*.png")) == [p for p in files if p.name.startswith("2")]
    with pytest.raises(InputError, match="no image files"):
        expand_inputs(str(tmp_path))
    with pytest.raises(InputError, match="no file, folder or glob match"):
        expand_inputs(str(tmp_path / "missing.png"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a.png").write_bytes(files[0].read_bytes())
    assert expand_inputs(str(tmp_path / "*")) == [tmp_path / "a.png"]  # as a folder: images only
    with pytest.raises(InputError, match=r"input: 1 files match .*\*.txt, none an image \(.bmp, "):
        expand_inputs(str(tmp_path / "*.txt"))


def tiny_net() -> CRNN:
    torch.manual_seed(0)
    return CRNN(num_classes=len(CAPTCHA_V2), channels=(4,), width_halvings=1, hidden=8, context=0, rnn="none").eval()


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """A loadable checkpoint of an untrained tiny net, a folder of two images, and links to both (a symlink, a hard
    link): enough for the refusals, no training."""
    net = tiny_net()
    ckpt = tmp_path / "best.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"hyper_parameters": {"net_spec": net.spec, "symbols": CAPTCHA_V2}, "state_dict": state}, ckpt)
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        PIL.Image.fromarray(rng.integers(0, 256, (50, 200), dtype=np.uint8)).save(images / name)
    (tmp_path / "link.csv").symlink_to(ckpt)
    os.link(images / "a.png", tmp_path / "a.csv")
    os.link(images / "b.png", tmp_path / "hard.csv")
    return {"ckpt": ckpt, "images": images, "image": images / "a.png", "root": tmp_path}


def predict_cfg(files, **keys):
    base = {"ckpt_path": str(files["ckpt"]), "input": str(files["images"]), "batch_size": 4, "device": "cpu"}
    return OmegaConf.create({**base, **keys})


@pytest.mark.parametrize(
    ("input_key", "output", "named"),
    [
        ("images", "best.ckpt", "not a .csv file name"),  # e.g. a run's checkpoint or metrics.json
        ("image", "in/a.png", "not a .csv file name"),
        ("images", "link.csv", "the checkpoint"),  # a symlink to it
        ("image", "a.csv", "the input "),  # a hard link to the one input file
        ("image", "in/../a.csv", "the input "),  # by another spelling
        ("images", "hard.csv", "the input "),  # a hard link to a folder's image
    ],
)
def test_output_that_is_no_csv_or_the_checkpoint_or_an_input_is_refused(files, capsys, input_key, output, named):
    before = {p: p.read_bytes() for p in files["root"].rglob("*") if p.is_file()}
    out = files["root"] / output
    with pytest.raises(SystemExit) as exit_info:
        run(predict_cfg(files, input=str(files[input_key]), output=str(out)))
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and not captured.out  # refused before any image is read
    assert captured.err.startswith(f"error: output: {out} is {named}") and len(captured.err.splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before  # nothing written over


def test_output_over_a_folders_labels_file_is_refused(files, capsys):
    labels = files["root"] / "labels.csv"  # what data.labels=file reads beside the images
    labels.write_text("2b827.png,2b827\n")
    with pytest.raises(SystemExit):
        run(predict_cfg(files, output=str(labels)))
    assert capsys.readouterr().err.startswith(f"error: output: {labels} is a folder's labels file")
    assert labels.read_text() == "2b827.png,2b827\n"


def test_output_over_an_earlier_csv_is_still_written(files, capsys):
    out = files["root"] / "predictions.csv"
    out.write_text("an earlier run's CSV\n")
    assert run(predict_cfg(files, output=str(out))) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "path,text,confidence,error" and len(lines) == 3
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize("marker", ["eval.json", "metrics.json", ".hydra"])
def test_output_over_a_csv_of_a_run_or_eval_is_refused(files, capsys, marker):
    # An eval's per_char.csv was silently replaced by predictions.
    own = files["root"] / "evals" / "x" / "per_char.csv"
    own.parent.mkdir(parents=True)
    (own.parent / marker).mkdir() if marker == ".hydra" else (own.parent / marker).write_text("{}")
    own.write_text("the eval's own\n")
    (files["root"] / "to_eval.csv").symlink_to(own)
    for output in (own, files["root"] / "to_eval.csv"):  # by a link too
        with pytest.raises(SystemExit) as exit_info:
            run(predict_cfg(files, output=str(output)))
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1
        assert err.startswith(f"error: output: {output} is a file of the run, eval or sweep in {own.parent} (")
    assert own.read_text() == "the eval's own\n"
    assert run(predict_cfg(files, output=str(own.parent / "new.csv"))) == 0  # a new name there is the user's


def test_output_that_is_a_link_writes_its_target_and_stays_a_link(files, capsys):
    target, link = files["root"] / "kept.csv", files["root"] / "latest.csv"
    target.write_text("an earlier CSV\n")
    link.symlink_to(target.name)
    assert run(predict_cfg(files, output=str(link))) == 0
    assert link.is_symlink() and target.read_text().startswith("path,text,confidence,error")
    (files["root"] / "notes.txt").write_text("mine")
    (files["root"] / "notes.csv").symlink_to("notes.txt")  # a .csv name for a file that is no CSV
    with pytest.raises(SystemExit):
        run(predict_cfg(files, output=str(files["root"] / "notes.csv")))
    assert "links to " in capsys.readouterr().err and (files["root"] / "notes.txt").read_text() == "mine"


def test_a_file_name_that_is_not_utf8_reaches_the_csv_as_its_bytes(files, capsys):
    odd = os.fsdecode(b"2345\xff.png")  # its byte 0xff kept as a surrogate
    (files["images"] / "a.png").rename(files["images"] / odd)
    (files["images"] / os.fsdecode(b"bad\xff.png")).write_bytes(b"not an image")
    out = files["root"] / "predictions.csv"
    out.write_text("an earlier run's CSV\n")
    assert run(predict_cfg(files, output=str(out))) == 1  # the unreadable one
    assert os.fsencode(str(files["images"] / odd)) in out.read_bytes()
    captured = capsys.readouterr()  # the terminal gets the byte escaped: a UTF-8 stream cannot hold it
    assert "2345\\xff.png\t" in captured.out and "bad\\xff.png: not a readable image" in captured.err
    assert not list(files["root"].glob("*.tmp"))  # written aside, then moved over the earlier CSV


def test_a_name_stdout_cannot_encode_is_escaped_and_the_csv_complete(files, monkeypatch):
    # An ASCII locale (or a Windows console) ended the reads with a UnicodeEncodeError, CSV unwritten.
    (files["images"] / "a.png").rename(files["images"] / "é\u2028.png")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    out = files["root"] / "predictions.csv"
    assert run(predict_cfg(files, output=str(out))) == 0
    stdout.flush()
    # \N{...}: apart from a name's undecodable byte 0xe9, which prints as \xe9
    assert "\\N{LATIN SMALL LETTER E WITH ACUTE}\\u2028.png\t" in stdout.buffer.getvalue().decode("ascii")
    with contextlib.redirect_stdout(io.StringIO()) as caught:  # a caller's capture: no encoding to lack
        assert run(predict_cfg(files)) == 0
    assert len(caught.getvalue().splitlines()) == 2
    with open(out, encoding="utf-8", newline="") as f:
        assert [r["path"].endswith("é\u2028.png") for r in csv.DictReader(f)] == [
            False,
            True,
        ]  # b.png, then a.png renamed


def test_a_broken_link_matched_by_a_glob_is_an_unreadable_input(tmp_path, tiny_dir):
    # As in a folder input: named as unreadable, not silently left out.
    (tmp_path / "a.png").write_bytes(next(tiny_dir.glob("*.png")).read_bytes())
    (tmp_path / "broken.png").symlink_to(tmp_path / "gone.png")
    assert expand_inputs(str(tmp_path / "*")) == [tmp_path / "a.png", tmp_path / "broken.png"]
    assert expand_inputs(str(tmp_path)) == expand_inputs(str(tmp_path / "*"))


def test_a_recursive_glob_finds_nested_images(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for path in (tmp_path / "top.png", tmp_path / "a" / "b" / "deep.png"):
        path.write_bytes(b"")
    assert [p.name for p in expand_inputs(f"{tmp_path}/**/*.png")] == ["deep.png", "top.png"]


def test_a_named_pipe_is_an_input_that_cannot_be_read_not_one_waited_on(files, capsys):
    # Named as an image, alone or in a folder, it waited for a writer for ever.
    with named_pipe(files["images"] / "c.png", files["image"].read_bytes()) as fifo:
        assert run(predict_cfg(files, input=str(fifo))) == 1
        assert run(predict_cfg(files)) == 1  # the folder: its two images read, the pipe named
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: {fifo}: not a regular file"] * 2
    assert len(captured.out.splitlines()) == 2


def test_a_recursive_glob_goes_down_no_linked_folder_and_lists_an_image_once(tmp_path):
    (tmp_path / "sub").mkdir()
    for path in (tmp_path / "top.png", tmp_path / "sub" / "deep.png"):
        path.write_bytes(b"")
    (tmp_path / "sub" / "up").symlink_to("..")  # glob listed top.png 41 times, through sub/up/sub/up/...
    expected = [tmp_path / "sub" / "deep.png", tmp_path / "top.png"]
    assert expand_inputs(f"{tmp_path}/**/*.png") == expected
    for name in ("a", "b"):  # links to their own folder: glob went round them for ever
        (tmp_path / name).symlink_to(".")
    assert expand_inputs(f"{tmp_path}/**/*.png") == expected
    # A plain `*` still follows a link, but a/top.png and b/top.png are one file in one folder.
    assert expand_inputs(f"{tmp_path}/*/*.png") == [tmp_path / "a" / "top.png", tmp_path / "sub" / "deep.png"]


def test_the_same_command_may_write_its_csv_again_inside_a_run(files, capsys):
    """A CSV predict.py wrote (its own header) is its own, also in a run's folder."""
    (files["root"] / "metrics.json").write_text("{}")
    out = files["root"] / "preds.csv"
    assert run(predict_cfg(files, output=str(out))) == 0
    assert run(predict_cfg(files, output=str(out))) == 0
    assert out.read_text().splitlines()[0] == "path,text,confidence,error"
