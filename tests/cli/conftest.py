"""CLI test helpers: root scripts' __main__ run in process, real processes, configs for any run dir, a shared run."""

import contextlib
import hashlib
import io
import logging
import runpy
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from captcha_lab.cli.train import train

from ..conftest import ROOT

TINY = ["data.synthetic=0", "epochs=1", "~callbacks.progress_bar"]  # after data.dir=<the tiny set>


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path) with the sha256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@contextlib.contextmanager
def logging_restored():
    """Hydra configures logging for each job (handlers on the root logger, the run's train.log):
    put every logger's handlers, level and switches back as they were, closing Hydra's."""

    def loggers() -> list[logging.Logger]:
        manager = logging.root.manager
        return [logging.root, *(lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger))]

    saved = {lg: (lg.handlers[:], lg.level, lg.disabled, lg.propagate) for lg in loggers()}
    try:
        yield
    finally:
        for logger in loggers():
            handlers, level, disabled, propagate = saved.get(logger, ([], logging.NOTSET, False, True))
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.disabled, logger.propagate = disabled, propagate


@contextlib.contextmanager
def warnings_printed():
    """Warnings printed to sys.stderr under a fresh process's filters (and the suite's
    PYTHONWARNINGS=ignore::DeprecationWarning), instead of recorded by pytest."""

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = show
        yield


def run_main(script: str, *argv: str) -> tuple[int, str]:
    """`python <script> <argv>` (train.py, eval.py, predict.py) run in this process, as hydra.main
    runs it (its callbacks, multiruns and job logging included): its exit code and its stderr.
    Saves a process start (~5 s of imports) per command where the process itself is not the point."""
    GlobalHydra.instance().clear()
    err, code = io.StringIO(), 0
    with logging_restored(), contextlib.redirect_stderr(err), warnings_printed():
        try:
            # Hydra shows its full traceback instead of its short message under a tracer (a
            # debugger, or pytest-cov's coverage): a plain process has none.
            with (
                mock.patch.object(sys, "argv", [script, *argv]),
                mock.patch("hydra._internal.utils.is_under_debugger", return_value=False),
            ):
                runpy.run_path(str(ROOT / script), run_name="__main__")
        except SystemExit as e:
            code = e.code or 0
    GlobalHydra.instance().clear()
    return code, err.getvalue()


def start(script: str, *args: str, out: Path) -> subprocess.Popen:
    """`python <script> <args>` started in the repository root, its stdout in `out` and its stderr
    in `out` with suffix .err: files, not pipes, which would block the child once full."""
    with open(out, "w") as stdout, open(out.with_suffix(".err"), "w") as stderr:
        # A shell's background job (`make test &`, some CI runners) starts with SIGINT ignored,
        # and Python then installs no Ctrl-C handler: give the child the default back.
        return subprocess.Popen(
            [sys.executable, script, *args],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


@pytest.fixture(scope="session")
def make_cfg_in(tiny_dir):
    """make_cfg into a run dir of the caller's choosing, for module- and session-scoped runs."""

    def make(run_dir: Path, *overrides: str, config_name: str = "train"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name, [f"data.dir={tiny_dir}", *TINY, *overrides], return_hydra_config=True)
        GlobalHydra.instance().clear()
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.hydra.job.num = 0
        run_dir.mkdir(parents=True, exist_ok=True)
        HydraConfig.instance().set_config(cfg)
        return cfg

    return make


@pytest.fixture(scope="session")
def one_epoch_run(tmp_path_factory, make_cfg_in) -> Path:
    """One epoch of the report's net on the tiny set, seed 0, with `~logger` (no events, no plots)."""
    run = tmp_path_factory.mktemp("one_epoch") / "run"
    train(make_cfg_in(run, "~logger"))
    return run
