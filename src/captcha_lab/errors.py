"""User errors: reported as one line (`error: ...`) and an exit status, never as a traceback."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf


class CaptchaLabError(Exception):
    """A user error (bad data, bad config): reported as one line, never as a traceback."""


class DataError(CaptchaLabError):
    pass


class ConfigError(CaptchaLabError):
    pass


@contextmanager
def user_errors() -> Iterator[None]:
    """Report a user error (bad data, bad config) as one line on stderr, not a traceback."""
    try:
        yield
    except CaptchaLabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # outside fit (Lightning handles Ctrl-C inside it and exits with 1)
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


REQUIRED_EXAMPLES = {"ckpt_path": "outputs/runs/<run>/checkpoints/best.ckpt", "input": "captchas/"}


def require(cfg: DictConfig, *keys: str) -> None:
    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key} is required, e.g. {key}={REQUIRED_EXAMPLES[key]}")
