"""Label conventions (data.labels): file name, prefix before `_`, or a labels file; auto-detected."""

import logging
import re
import shutil

import pytest

from captcha_lab.data.charset import Charset
from captcha_lab.data.datamodule import CaptchaDataModule
from captcha_lab.data.labelled import load_folder
from captcha_lab.data.labels import labels_of
from captcha_lab.errors import ConfigError, DataError

DIGITS = Charset("0123456789")


@pytest.fixture
def images(tmp_path, tiny_dir):
    """Six of the tiny captchas as 1.png .. 6.png, their true labels kept aside."""
    folder, truth = tmp_path / "set", {}
    folder.mkdir()
    for i, path in enumerate(sorted(tiny_dir.glob("*.png"))[:6], 1):
        shutil.copy(path, folder / f"{i}.png")
        truth[f"{i}.png"] = path.stem
    return folder, truth


def names(labels: dict) -> dict[str, str]:
    return {p.name: label for p, label in labels.items()}


def test_file_name_and_prefix_conventions(tmp_path, caplog):
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("226md.png", "aaff_886805.jpg", "b_c_d.png"):
        (folder / name).write_bytes(b"")
    files = sorted(folder.iterdir())
    with caplog.at_level(logging.INFO):
        assert names(labels_of(folder, files, "name"))["aaff_886805.jpg"] == "aaff_886805"
        prefix = names(labels_of(folder, files, "prefix"))
    assert prefix == {"226md.png": "226md", "aaff_886805.jpg": "aaff", "b_c_d.png": "b"}
    assert "labels: from the file names before their first '_', 3 images" in caplog.text
    # auto: prefix only where every name has a `_`; where most have one, the stray ones are named
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert names(labels_of(folder, files))["aaff_886805.jpg"] == "aaff_886805"
    assert caplog.messages == [
        "labels: from the whole file names, as 1 name(s) have no '_' (226md.png); data.labels=prefix takes the part"
        " before the first '_'"
    ]
    assert names(labels_of(folder, files[1:]))["b_c_d.png"] == "b"


@pytest.mark.parametrize(
    ("file", "lines"),
    [
        ("labels.tsv", ["file\tlabel", *(f"{n}\t{t}" for n, t in [("1.png", "A"), ("2.png", "B")])]),
        ("labels.csv", ["filename,label", "1.png, A", "2.png,B"]),
        ("labels.txt", ["1.png\tA", "2.png\tB"]),
    ],
)
def test_labels_file_with_or_without_header_is_found_by_auto(images, file, lines, caplog):
    folder, _ = images
    (folder / file).write_text("\n".join(lines) + "\n")
    files = sorted(folder.glob("*.png"))
    with caplog.at_level(logging.INFO):
        labels = names(labels_of(folder, files))
    assert labels == {"1.png": "A", "2.png": "B"}
    assert f"labels: from {file}, 2 images" in caplog.text
    assert "skipped 4 file(s) without an entry in" in caplog.text  # 3.png .. 6.png


def test_partial_and_contradictory_labels_files_are_counted_warnings(images, caplog):
    folder, truth = images
    rows = [f"{n}\t{t}" for n, t in truth.items() if n != "6.png"]  # 6.png: no entry
    rows += ["1.png\t" + truth["1.png"], "2.png\tzzzzz", "gone.png\tabcde", "also_gone.png\tabcde"]
    (folder / "labels.tsv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        data = load_folder(folder, Charset(), 5)
    assert sorted(data.names) == ["1.png", "3.png", "4.png", "5.png"]  # 2.png contradicted, 6.png unnamed
    assert Charset().texts(data.targets) == [truth[n] for n in data.names]
    for line in [
        "skipped 2 file(s) named in labels.tsv but not in the folder: gone.png, also_gone.png",
        "skipped 1 file(s) named twice in labels.tsv (kept once): 1.png",
        "skipped 1 file(s) with contradictory labels in labels.tsv: 2.png",
        "skipped 1 file(s) without an entry in labels.tsv: 6.png",
    ]:
        assert line in caplog.text


def test_quoted_csv_fields_and_a_comma_in_the_label(images):
    folder, _ = images
    (folder / "labels.csv").write_text('"file","label"\n"1.png","ab,c"\n2.png,d,e\n"3.png",f\n')
    labels = names(labels_of(folder, sorted(folder.glob("*.png"))))
    assert labels == {"1.png": "ab,c", "2.png": "d,e", "3.png": "f"}


def test_empty_labels_are_skipped_with_a_warning(tmp_path, images, caplog):
    folder, _ = images
    (folder / "labels.tsv").write_text("1.png\t12\n2.png\t\n3.png\t 123\n")
    with caplog.at_level(logging.WARNING):
        labels = names(labels_of(folder, sorted(folder.glob("*.png"))))
    assert labels == {"1.png": "12", "3.png": "123"}  # the shortest label stays 2 long
    assert "skipped 1 file(s) with an empty label: 2.png" in caplog.text
    prefixed = tmp_path / "p"
    prefixed.mkdir()
    for name in ("ab_1.png", "_2.png"):
        (prefixed / name).write_bytes(b"")
    assert names(labels_of(prefixed, sorted(prefixed.iterdir()))) == {"ab_1.png": "ab"}


def test_names_that_are_not_utf8_are_skipped_with_a_warning(tmp_path, caplog):
    # A zip made where names are GBK, unpacked here: its bytes would become symbols of their own.
    folder = tmp_path / "gbk"
    folder.mkdir()
    for name in (b"2b827.png", "2b中.png".encode("gbk"), b"_x.png"):
        (folder / name.decode("utf-8", "surrogateescape")).write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        labels = names(labels_of(folder, sorted(folder.iterdir()), "name"))
    assert labels == {"2b827.png": "2b827", "_x.png": "_x"}
    assert "skipped 1 file(s) whose name is not UTF-8: 2b\\xd6\\xd0.png" in caplog.text


def test_unusable_labels_are_one_line_errors(images):
    folder, _ = images
    with pytest.raises(DataError, match=r"data.labels=file: no labels.tsv, labels.txt, labels.csv in "):
        load_folder(folder, Charset(), 5, labels="file")
    with pytest.raises(DataError, match=r"data.labels must be one of auto, name, prefix, file, got 'stem'"):
        load_folder(folder, Charset(), 5, labels="stem")
    (folder / "labels.csv").write_text("1.png,1234\n2.png 5678\n")
    with pytest.raises(DataError, match=r"labels.csv:2: no tab or comma between file name and label: '2.png 5678'"):
        load_folder(folder, DIGITS, 4)
    (folder / "labels.tsv").write_text("1.png\t1234\t\n2.png\t5678\tverified\n")  # a trailing tab is no column
    with pytest.raises(DataError, match=r"labels.tsv:2: 3 tab-separated fields, not file name<TAB>label$"):
        load_folder(folder, DIGITS, 4)
    (folder / "labels.tsv").unlink()
    (folder / "labels.csv").write_text("1.png,12\n")  # no label of the length asked for
    with pytest.raises(DataError, match=r"no usable captcha images in .*set \(labels of 4 symbols from '0123456789'\)"):
        load_folder(folder, DIGITS, 4)
    (folder / "labels.csv").write_text("gone.png,1234\n1,5678\n")  # names the folder has not
    with pytest.raises(DataError, match=r"labels.csv: labels none of the folder's 6 images \(e.g. '1.png'\)$"):
        load_folder(folder, DIGITS, 4)
    with pytest.raises(DataError, match=r"labels.csv: labels none of the folder's 6 images"):  # not an empty alphabet
        CaptchaDataModule(dir=str(folder), symbols="auto")


def test_a_max_length_below_the_shortest_label_names_both(tiny_dir):  # labels of 5
    with pytest.raises(
        ConfigError,
        match=rf"^data.max_length=4 is below data.length=5 \(the shortest label in {re.escape(str(tiny_dir))}\)$",
    ):
        CaptchaDataModule(dir=str(tiny_dir), symbols="auto", max_length=4)
    with pytest.raises(
        ConfigError, match=r"^data.max_length=4 is below data.length=5 \(data.synthetic's label length\)$"
    ):
        CaptchaDataModule(dir=str(tiny_dir / "s"), synthetic=8, max_length=4)


def test_the_data_module_reads_by_its_labels_setting(images):
    folder, truth = images
    for i, name in enumerate(sorted(truth), 1):  # as ddddocr's trainer names them
        (folder / name).rename(folder / f"{truth[name]}_{i}.png")
    datamodule = CaptchaDataModule(dir=str(folder), labels="prefix", test_fraction=0, val_fraction=0.5)
    datamodule.setup()
    splits = datamodule.splits
    read = Charset().texts(splits["train"].targets) + Charset().texts(splits["val"].targets)
    assert sorted(read) == sorted(truth.values())
    with pytest.raises(ConfigError, match=r"^data.labels must be one of auto, name, prefix, file, got 'names'$"):
        CaptchaDataModule(dir=str(folder), labels="names")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"1.png,A\n\n2.png,B\n\n", {"1.png": "A", "2.png": "B"}),  # blank lines, as editors leave them
        (b"\xef\xbb\xbf1.png,A\r\n2.png,B\r\n", {"1.png": "A", "2.png": "B"}),  # Excel: a BOM, no header, CRLF
        (b"1.png\ta,b\n2.png\tc\n", {"1.png": "a,b", "2.png": "c"}),  # a tab line's label may hold a comma
        (b"1.png ,A\n 2.png\tB\n", {"1.png": "A", "2.png": "B"}),  # spaces around the name
    ],
)
def test_labels_files_as_editors_and_spreadsheets_write_them(images, content, expected):
    folder, _ = images
    (folder / "labels.txt").write_bytes(content)
    assert names(labels_of(folder, sorted(folder.glob("*.png")))) == expected
