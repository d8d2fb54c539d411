"""Lightning callbacks of our own."""

import logging
import statistics
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class EpochTimer(L.Callback):
    """Wall time of each training epoch, from its start to the next epoch's start (or the end of
    training), so its validation and checkpoints count: Lightning runs ModelCheckpoint's epoch-end
    hooks after every other callback's. Logged as `perf/epoch_s` at the epoch's last step; the
    median of epochs after the first (which pays one-off warm-up) is the steady-state figure
    written to timing.json."""

    def __init__(self):
        self.times: list[float] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._stop(trainer)
        self._start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop(trainer)

    def _stop(self, trainer) -> None:
        if self._start is None:
            return
        self.times.append(time.perf_counter() - self._start)
        self._start = None
        # Where Lightning logged the epoch's other metrics (its batches that stepped, minus one:
        # global_step with one optimizer and automatic optimization, as in CaptchaSystem).
        step = max(trainer.global_step - 1, 0)
        for logger in trainer.loggers:  # not self.log: the epoch's metrics are already written
            logger.log_metrics({"perf/epoch_s": self.times[-1]}, step=step)

    @property
    def steady_state(self) -> float | None:
        times = self.times[1:] or self.times
        return statistics.median(times) if times else None


class InterruptCheckpoint(L.Callback):
    """Saves `<dirpath>/interrupted.ckpt` on Ctrl-C or SIGTERM (not on other errors, whose state
    may be half-built), so `ckpt_path=` can resume from the very step that was interrupted.
    A plain Callback, not a `Checkpoint`: `ckpt_path="best"` must keep meaning ModelCheckpoint's."""

    def __init__(self, dirpath: str, filename: str = "interrupted"):
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or trainer.global_step == 0:
            return
        trainer.save_checkpoint(self.path)  # atomic (written aside, then moved), like every Lightning save
        log.warning("interrupted: saved %s (resume with ckpt_path=%s)", self.path, self.path)
