"""predict.py: `python predict.py ckpt_path=PATH input=FILE|DIR|GLOB [output=FILE.csv]`.

Reads with the checkpoint's ONNX export on ONNX Runtime where there is one (train.py writes
best.onnx beside best.ckpt), else with PyTorch. Each backend is imported only when it reads:
`import torch` would be most of a one-image job's time."""

import csv
import glob
import io
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from captcha_lab import atomic
from captcha_lab.cli.exits import user_errors
from captcha_lab.cli.process import set_up_for_job
from captcha_lab.cli.validation import check_checkpoint_file, check_keys, require, require_at_least_one
from captcha_lab.data.images import IMAGE_SUFFIXES, list_images, printable
from captcha_lab.data.labels import LABEL_FILES
from captcha_lab.errors import CaptchaLabError, ConfigError, DataError, first_line, first_sentence
from captcha_lab.inference.onnx_format import missing_export, onnx_path
from captcha_lab.inference.reader import BATCH_SIZE, Prediction, Reader


class InputError(CaptchaLabError):
    pass


class Backend(str, Enum):
    auto = "auto"  # onnx where the checkpoint has a current export and device=cpu, else torch
    onnx = "onnx"
    torch = "torch"


@dataclass
class PredictConfig:
    """conf/predict.yaml's keys and types (plain OmegaConf, not Hydra's ConfigStore: predict.py
    stays light), so `batch_size=abc` fails as one line naming the key."""

    ckpt_path: str = MISSING
    input: str = MISSING
    output: Optional[str] = None  # noqa: UP045 (OmegaConf schemas need typing.Optional)
    batch_size: int = BATCH_SIZE
    device: str = "cpu"
    backend: Backend = Backend.auto


def checked(cfg: DictConfig) -> DictConfig:
    check_keys(cfg, PredictConfig)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(PredictConfig), cfg)
    except ValidationError as e:
        raise ConfigError(f"{e.full_key}: {first_line(e)}") from None
    require_at_least_one(cfg, "batch_size")
    require(cfg, "ckpt_path", "input")
    if Path(cfg.ckpt_path).suffix.lower() == ".onnx":
        raise ConfigError(
            f"ckpt_path: {cfg.ckpt_path} is an ONNX export; pass its .ckpt (the .onnx is read from beside it)"
        )
    check_checkpoint_file(cfg, "ckpt_path")
    if cfg.backend == Backend.onnx and cfg.device != "cpu":
        raise ConfigError(f"backend: onnx reads on the CPU only; use backend=torch for device={cfg.device}")
    check_device(cfg.device)
    # Before any work, not after every image is read: the CSV must be writable (where a link points).
    folder = Path(os.path.realpath(cfg.output)).parent if cfg.output else None
    if cfg.output and (Path(cfg.output).is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK)):
        raise ConfigError(
            f"output: cannot write a CSV file at {cfg.output} (a folder, or its folder is missing or read-only)"
        )
    return cfg


# What a run, eval or sweep dir holds: a CSV of theirs (an eval's per_char.csv) must stay theirs.
RUN_FILES = ("eval.json", "metrics.json", ".hydra", "multirun.yaml", "optimization_results.yaml")
CSV_HEADER = ["path", "text", "confidence", "error"]


def check_output(output: str, ckpt_path: str, inputs: Sequence[Path]) -> str:
    """Refuse an `output` that is no .csv name (e.g. a run's last.ckpt or metrics.json), that is
    the checkpoint or an input image by any path, link or hard link (the same file, not the same
    name), or that is a file of a run or eval: the CSV would replace it. Returns the path to
    write: a link's target, so that the link stays a link."""
    if not output.lower().endswith(".csv"):
        raise ConfigError(f"output: {output} is not a .csv file name; predict.py writes a CSV there")
    target = os.path.realpath(output)
    try:
        existing = os.stat(target)
    except OSError:  # not there yet: neither the checkpoint (it must exist) nor an input with data to lose
        existing = None
    if existing is not None:
        check_not_an_input(output, existing, ckpt_path, inputs)
    if not target.lower().endswith(".csv"):
        raise ConfigError(f"output: {output} links to {target}, not a .csv file name; predict.py writes a CSV there")
    if existing is None or (stat.S_ISREG(existing.st_mode) and written_by_predict(target)):
        return target  # a new file, or predict's own earlier CSV: the same command may run again
    folder = os.path.dirname(target)
    held = [name for name in RUN_FILES if os.path.lexists(os.path.join(folder, name))]
    if os.path.basename(target) in LABEL_FILES:  # a folder's labels (data.labels)
        raise ConfigError(f"output: {output} is a folder's labels file; the CSV would replace its labels")
    if held:
        raise ConfigError(
            f"output: {output} is a file of the run, eval or sweep in {folder} (it holds {held[0]}); "
            "the CSV would replace it: write it elsewhere"
        )
    return target


def written_by_predict(path: str) -> bool:
    """Whether the CSV at `path` starts with predict.py's own header (write_csv's first row)."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\r\n") == ",".join(CSV_HEADER)
    except OSError:
        return False


def check_not_an_input(output: str, existing: os.stat_result, ckpt_path: str, inputs: Sequence[Path]) -> None:
    for path, what in [(ckpt_path, "the checkpoint (ckpt_path)"), *((p, f"the input {p}") for p in inputs)]:
        try:
            same = os.path.samestat(existing, os.stat(path))
        except OSError:  # a broken link among the inputs: not the existing output
            continue
        if same:
            raise ConfigError(f"output: {output} is {what}; the CSV would overwrite it")


def check_device(device: str) -> None:
    if device == "cpu":  # always there; not worth importing torch for
        return
    import torch  # here, not at the top: see the module's docstring

    # Allocating on it is the one test that covers every kind and index (cuda:3 on one GPU, mps).
    try:
        if torch.empty(0, device=device).is_meta:
            raise RuntimeError("it holds no data")
    except Exception as e:  # RuntimeError, AssertionError (no XPU), NotImplementedError (mps), ImportError (hpu)
        raise ConfigError(f"device: {device!r} is not usable here ({first_sentence(e)})") from None


def expand_inputs(spec: str) -> list[Path]:
    """A file, a folder (its images, sorted) or a glob pattern (its image files, sorted: as for
    a folder, `dir/*` leaves out a notes.txt or an earlier run's predictions.csv)."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        try:
            return list_images(path)  # a broken link included: an input that cannot be read
        except DataError:
            raise InputError(f"input: no image files in folder {spec}") from None
    # Not is_file(): a broken link is an input that cannot be read, as in a folder (list_images).
    matches = [p for p in glob_paths(spec) if not p.is_dir()]
    if not matches:
        raise InputError(f"input: no file, folder or glob match for {spec}")
    images = [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise InputError(f"input: {len(matches)} files match {spec}, none an image ({suffixes})")
    return images


def glob_paths(pattern: str) -> list[Path]:
    """glob.glob(pattern, recursive=True), sorted, but `**` goes down into no linked folder (as
    pathlib's): a link to its own folder (`a -> .`) would take glob round it for ever. A file
    reached by two paths through linked folders (`sub/up -> ..`) is listed once."""
    found = {}
    for path in sorted(_glob(pattern)):  # the first path in order is the one kept
        found.setdefault((os.path.realpath(os.path.dirname(path)), os.path.basename(path)), path)
    return sorted(Path(p) for p in found.values())


def _glob(pattern: str) -> Iterator[str]:
    parts = pattern.split("/")
    if "**" not in parts:
        yield from glob.glob(pattern)
        return
    i = parts.index("**")
    head, rest = "/".join(parts[:i]) or ("/" if i else ""), "/".join(parts[i + 1 :]) or "*"
    for base in glob.glob(head) if head else [""]:
        for folder in _folders(base):
            yield from _glob(os.path.join(glob.escape(folder), rest))


def _folders(base: str) -> Iterator[str]:
    """`base` and each folder below it, as glob's `**` finds them (no hidden ones), but no link."""
    stack = [base]
    while stack:
        folder = stack.pop()
        yield folder
        try:
            with os.scandir(folder or os.curdir) as entries:
                stack += [
                    os.path.join(folder, e.name)
                    for e in entries
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                ]
        except OSError:  # a file, or a folder this user cannot list: as glob, nothing below it
            continue


def run(cfg: DictConfig) -> int:
    """predict.py: print `path<TAB>text<TAB>confidence` per input image; returns how many could not be read."""
    # A file name or read that stdout's encoding lacks (an ASCII locale, a Windows console) is
    # escaped, not an error that would end the reads and lose the CSV; as \N{...}, apart from
    # the \xNN of a name's undecodable bytes. (A caller's StringIO has no encoding to lack.)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="namereplace")
    with user_errors():
        cfg = checked(cfg)
        paths = expand_inputs(str(cfg.input))
        output = check_output(str(cfg.output), str(cfg.ckpt_path), paths) if cfg.output else None
        set_up_for_job()
        predictor = load_reader(cfg, len(paths))
        rows, failed = [], 0
        for path, result in predictor.predict_files(paths):
            if isinstance(result, Prediction):
                if not say(f"{printable(path)}\t{result.text}\t{result.confidence:.4g}") and not cfg.output:
                    break  # nobody reads the rest, and no CSV wants it
                rows.append([str(path), result.text, f"{result.confidence:.4g}", ""])
            else:
                failed += 1
                print(f"error: {printable(str(result))}", file=sys.stderr, flush=True)
                rows.append([str(path), "", "", str(result)])
        if output:
            write_csv(output, [CSV_HEADER, *rows])
        return failed


def say(line: str) -> bool:
    """Print one read; False once the reader has gone (`predict.py ... | head`), which ends the
    printing: the CSV, where one is asked for, still gets every row."""
    try:
        print(line, flush=True)
        return True
    except BrokenPipeError:
        # Python's advice (signal module, SIGPIPE): point stdout at devnull, so that later prints
        # and the flush at exit go nowhere instead of raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False


def write_csv(path: str, rows: list[list[str]]) -> None:
    # surrogateescape: a file name that is not UTF-8 goes back out as its own bytes (stdout and
    # stderr show them escaped: images.printable).
    try:
        with atomic.writing(path, errors="surrogateescape") as f:
            csv.writer(f).writerows(rows)
    except OSError as e:  # a full disk, a folder made read-only meanwhile: the reads are on stdout
        raise ConfigError(
            f"output: cannot write {path} ({e.strerror or e}); the reads above are all there is"
        ) from None


def load_reader(cfg: DictConfig, n_images: int) -> Reader:
    exported = onnx_path(cfg.ckpt_path)
    if cfg.backend == Backend.onnx and not exported.is_file():
        raise ConfigError(f"backend=onnx: {missing_export(cfg.ckpt_path)}")
    if cfg.backend == Backend.onnx or (cfg.backend == Backend.auto and cfg.device == "cpu" and exported.is_file()):
        from captcha_lab.inference.onnx_backend import OnnxError, OnnxPredictor  # here: see the module's docstring

        try:
            return OnnxPredictor.from_file(exported, cfg.batch_size, checkpoint=cfg.ckpt_path)
        except OnnxError as e:
            if cfg.backend == Backend.onnx:
                raise
            print(f"warning: {printable(str(e))}; reading with PyTorch", file=sys.stderr, flush=True)
    from captcha_lab.inference.torch_backend import KERNEL_MIN_IMAGES, Predictor  # here: see the module's docstring

    kernel = n_images >= KERNEL_MIN_IMAGES
    return Predictor.from_checkpoint(cfg.ckpt_path, batch_size=cfg.batch_size, device=cfg.device, kernel=kernel)
