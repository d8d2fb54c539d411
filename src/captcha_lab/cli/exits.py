"""How a command ends on a user error: one line (`error: ...`) and exit status 2, never a
traceback; in a sweep, the job's error.txt instead, while the other jobs run."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from captcha_lab.atomic import write_text
from captcha_lab.errors import ERROR_FILE, CaptchaLabError


@contextmanager
def user_errors(sweep_job: Path | None = None) -> Iterator[None]:
    """Report a user error as one line: on stderr with exit status 2 or, for a `sweep_job` dir,
    into its error.txt, so that the sweep's other jobs still run (hydra_hooks.FailedJobs names
    the failed ones at the end)."""
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
