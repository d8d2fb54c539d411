"""The exceptions every layer raises for a user's mistake (bad data, bad config): the command
line reports them as one line (`error: ...`, exit status 2), never as a traceback."""

import math
import re

ERROR_FILE = "error.txt"  # a failed sweep job's one-line error, in its job dir


class CaptchaLabError(Exception):
    """A user error (bad data, bad config): reported as one line, never as a traceback."""


class DataError(CaptchaLabError):
    pass


class ConfigError(CaptchaLabError):
    pass


def first_line(e: Exception) -> str:
    """An exception's message cut to one line (libraries' messages run to many), or its class."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def first_sentence(e: Exception) -> str:
    """first_line(e) up to its first full stop: torch's "Could not run ... from the 'MPS' backend."
    goes on for a paragraph of advice and backend names."""
    return re.split(r"(?<=\.)\s", first_line(e), maxsplit=1)[0]


def check_range(name: str, value, low: float, high: float = math.inf, integer: bool = False, closed: bool = False):
    """ValueError unless `low <= value < high` (`<= high` if `closed`; an integer, if asked): a
    net's or transform's own argument check, which the command line reports as one line."""
    kinds = int if integer else int | float
    inside = isinstance(value, kinds) and not isinstance(value, bool) and low <= value
    inside = inside and (value <= high if closed else value < high)
    if not inside:
        bounds = f"in [{low}, {high}{']' if closed else ')'}" if high < math.inf else f">= {low}"
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} {bounds}, got {value!r}")
