"""Lightning callbacks of our own."""

import logging
import statistics
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class EpochTimer(L.Callback):
    """Wall time of each training epoch, its validation and checkpointing included: logged as
    `perf/epoch_s`; the median of epochs after the first (which pays one-off warm-up) is the
    steady-state figure written to metrics.json."""

    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self._start)
        pl_module.log("perf/epoch_s", self.times[-1])

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
