"""User errors: reported as one line (`error: ...`) and exit status 2, never as a traceback; in a
sweep, written to the job's error.txt while the other jobs run."""

import dataclasses
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from captcha_lab.atomic import write_text

ERROR_FILE = "error.txt"  # a failed sweep job's one-line error


class CaptchaLabError(Exception):
    """A user error (bad data, bad config): reported as one line, never as a traceback."""


class DataError(CaptchaLabError):
    pass


class ConfigError(CaptchaLabError):
    pass


def first_line(e: Exception) -> str:
    """An exception's message cut to one line (libraries' messages run to many), or its class."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


@contextmanager
def user_errors(sweep_job: Path | None = None) -> Iterator[None]:
    """Report a user error (bad data, bad config) as one line, not a traceback: on stderr with
    exit status 2 or, for a `sweep_job` dir, into its error.txt, so that the sweep's other jobs
    still run (hydra_hooks.FailedJobs names the failed ones at the end)."""
    if sweep_job is not None:  # one from an earlier sweep into the same dir is not this job's
        (sweep_job / ERROR_FILE).unlink(missing_ok=True)
    try:
        yield
    except CaptchaLabError as e:
        if sweep_job is None:
            stop(f"error: {e}", 2)
        write_text(sweep_job / ERROR_FILE, f"{e}\n")
        logging.getLogger("captcha_lab").error("error: %s", e)
    except KeyboardInterrupt:  # outside fit (Lightning handles Ctrl-C inside it and exits with 1)
        stop("error: interrupted", 130)


def stop(message: str, code: int) -> None:
    """Exit with `message` as the one line on stderr, and in the run's log file too (train.log,
    where Hydra writes one), so that a run dir left by a failed start says why."""
    print(message, file=sys.stderr)
    record = logging.LogRecord("captcha_lab", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    sys.exit(code)


REQUIRED_EXAMPLES = {"ckpt_path": "outputs/runs/<run>/checkpoints/best.ckpt", "input": "captchas/"}


def require_at_least_one(cfg: DictConfig, key: str) -> None:
    if cfg[key] < 1:
        raise ConfigError(f"{key} must be at least 1, got {cfg[key]}")


def require(cfg: DictConfig, *keys: str) -> None:
    for key in keys:
        if OmegaConf.is_missing(cfg, key) or cfg[key] == "":  # `ckpt_path=` would read as "."
            raise ConfigError(f"{key} is required, e.g. {key}={REQUIRED_EXAMPLES[key]}")


def check_checkpoint_file(cfg: DictConfig, key: str) -> None:
    """Named by its key here: the checkpoint reader, which knows no config, would name only the path."""
    if cfg[key] is not None and not Path(cfg[key]).is_file():
        raise ConfigError(f"{key}: no checkpoint file at {cfg[key]}")


def check_keys(cfg: DictConfig, schema: type) -> None:
    """Hydra lets `+lrr=1` add a top-level key that no schema field names; nothing would read it."""
    known = [f.name for f in dataclasses.fields(schema)]
    for key in cfg:
        if key not in known and key != "hydra":
            raise ConfigError(f"{key}: no such key (+{key}= adds one that nothing reads); the keys: {', '.join(known)}")


def check_range(name: str, value, low: float, high: float = math.inf, integer: bool = False, closed: bool = False):
    """ValueError unless `low <= value < high` (`<= high` if `closed`; an integer, if asked): a
    net's or transform's own argument check, which pipeline.make() reports as one line."""
    kinds = int if integer else int | float
    inside = isinstance(value, kinds) and not isinstance(value, bool) and low <= value
    inside = inside and (value <= high if closed else value < high)
    if not inside:
        bounds = f"in [{low}, {high}{']' if closed else ')'}" if high < math.inf else f">= {low}"
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} {bounds}, got {value!r}")
