"""Where a folder's labels come from, by one of three conventions:

- `name`: the file name without its suffix (`226md.png`);
- `prefix`: the part before the first `_` (`aaff_8868052241399122681.jpg`), as ddddocr's trainer
  names files;
- `file`: a labels file in the folder (labels.tsv, labels.txt or labels.csv): one `file name`,
  tab or comma, `label` per line, with an optional header line.

`auto` takes a labels file where there is one, else `prefix` where every name has a `_`, else
`name`."""

import csv
import logging
from pathlib import Path

from captcha_lab.data.images import printable
from captcha_lab.errors import DataError

log = logging.getLogger(__name__)
CONVENTIONS = ("auto", "name", "prefix", "file")
LABEL_FILES = ("labels.tsv", "labels.txt", "labels.csv")


def first_names(names: list[str], shown: int = 5) -> str:
    """The first few file names, printable in a log, and ", ..." where there are more."""
    return ", ".join(map(printable, names[:shown])) + (", ..." if len(names) > shown else "")


def warn_skipped(reason: str, names: list[str]) -> None:
    """One warning per reason, counting the files and naming the first few."""
    if names:
        log.warning("skipped %d file(s) %s: %s", len(names), reason, first_names(names))


def labels_of(folder: Path, files: list[Path], convention: str = "auto") -> dict[Path, str]:
    """Each labelled file's label, by `convention`; logs where the labels came from."""
    if convention not in CONVENTIONS:
        raise DataError(f"data.labels must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    label_file = next((folder / name for name in LABEL_FILES if (folder / name).is_file()), None)
    if convention == "auto":
        plain = [p.name for p in files if "_" not in p.stem]
        convention = "file" if label_file else "name" if plain else "prefix"
        if convention == "name" and len(plain) < len(files) / 2:  # a stray file in a ddddocr-style set
            log.warning(
                "labels: from the whole file names, as %d name(s) have no '_' (%s); data.labels=prefix takes"
                " the part before the first '_'",
                len(plain),
                first_names(plain),
            )
    if convention == "file":
        if label_file is None:
            raise DataError(f"data.labels=file: no {', '.join(LABEL_FILES)} in {folder}")
        labels = _from_file(label_file, files)
        # None of its names matched an image, or only with contradictory labels (dropped with a
        # warning): said here, or charset=auto would report an empty alphabet instead.
        if files and not labels:
            raise DataError(f"{label_file}: labels none of the folder's {len(files)} images (e.g. {files[0].name!r})")
        source = label_file.name
    elif convention == "prefix":
        labels = {p: p.stem.split("_", 1)[0] for p in files}
        source = "the file names before their first '_'"
    else:
        labels = {p: p.stem for p in files}
        source = "the file names"
    # An empty label (`_8868.jpg`, a tab and nothing) would make the shortest label 0 symbols long;
    # a name that is not UTF-8 (its bytes kept as surrogates: a zip made where names are GBK) has
    # no text, and its bytes would become symbols that no log, CSV or ONNX file can write.
    warn_skipped("with an empty label", [p.name for p, label in labels.items() if not label])
    not_text = {p: None for p, label in labels.items() if label and not _is_text(label)}  # in order
    warn_skipped("whose name is not UTF-8", [p.name for p in not_text])
    labels = {p: label for p, label in labels.items() if label and p not in not_text}
    log.info("labels: from %s, %d images", source, len(labels))
    return labels


def _is_text(label: str) -> bool:
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_file(label_file: Path, files: list[Path]) -> dict[Path, str]:
    """The labels file's entries for `files`; counted warnings for entries without an image,
    images without an entry, and names given twice (contradictory ones are dropped)."""
    by_name = {p.name: p for p in files}
    entries: dict[str, str] = {}
    missing, repeated, contradicted = [], [], set()
    for number, (name, label) in enumerate(_rows(label_file)):
        if name not in by_name:
            if number > 0 or Path(name).suffix:  # a first line without a file name is a header
                missing.append(name)
            continue
        if name not in entries:
            entries[name] = label
        elif entries[name] == label:
            repeated.append(name)
        else:
            contradicted.add(name)
    warn_skipped(f"named in {label_file.name} but not in the folder", missing)
    warn_skipped(f"named twice in {label_file.name} (kept once)", [n for n in repeated if n not in contradicted])
    warn_skipped(f"with contradictory labels in {label_file.name}", sorted(contradicted))
    warn_skipped(f"without an entry in {label_file.name}", [n for n in by_name if n not in entries])
    return {by_name[n]: label for n, label in entries.items() if n not in contradicted}


def _rows(label_file: Path) -> list[tuple[str, str]]:
    try:
        text = label_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{label_file}: cannot be read as UTF-8 text ({e})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        sep = "\t" if "\t" in line else ","
        if sep not in line:
            raise DataError(f"{label_file}:{number}: no tab or comma between file name and label: {line!r}")
        # Comma lines as CSV ("quoted, fields", as spreadsheets write them); a tab line as it is. Not
        # two comma fields: an unquoted label holds a comma, and everything after the first is it.
        # No label holds a tab (predict.py writes tab-separated path, text, confidence): a third
        # column is refused; a trailing tab (as spreadsheets export) is no column.
        if sep == "\t" and (tabs := line.rstrip().count("\t")) > 1:
            raise DataError(f"{label_file}:{number}: {tabs + 1} tab-separated fields, not file name<TAB>label")
        fields = next(csv.reader([line])) if sep == "," else []
        name, label = fields if len(fields) == 2 else line.split(sep, 1)
        rows.append((name.strip(), label.strip()))
    return rows
