"""Lightning callbacks of our own."""

import filecmp
import logging
import shutil
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from captcha_lab.atomic import replacing

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


class RankSeed(L.Callback):
    """Under DDP every process is seeded with `seed`, which gives every rank the same initial
    weights. From the first training step rank k draws from `seed + k`: with one seed each rank
    would drop the same units and warp its images alike. One device: nothing changes."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(self.seed + trainer.global_rank)


class InterruptCheckpoint(L.Callback):
    """Saves `<dirpath>/interrupted.ckpt` on Ctrl-C or SIGTERM (not on other errors, whose state
    may be half-built), so `ckpt_path=` can resume from the very step that was interrupted.
    A plain Callback, not a `Checkpoint`: `ckpt_path="best"` must keep meaning ModelCheckpoint's."""

    def __init__(self, dirpath: str, filename: str = "interrupted"):
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if trainer.state.fn != TrainerFn.FITTING:  # train.py's test at the end: its weights are best.ckpt's
            log.warning("interrupted during %s: nothing to save; last.ckpt holds the training", trainer.state.fn.value)
            return
        if trainer.global_step == 0:
            log.warning("interrupted before the first training step: nothing to save")
            return
        # Atomic (written aside, then moved), like every Lightning save. weights_only=False: the
        # optimizer and loops too, to resume from (and said, or Lightning logs that it chose so).
        trainer.save_checkpoint(self.path, weights_only=False)
        log.warning("interrupted: saved %s (resume with ckpt_path=%s)", self.path, self.path)


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that carries its best over a resume into another run dir (train.py's way:
    each resume gets a new one). Lightning keeps a best score only in the same dirpath, so the
    new run's best.ckpt, and the test split scored with it, would cover only the epochs since the
    resume. Here the earlier best file is copied into this dirpath and its score kept; the
    earlier run's files are only read."""

    @property
    def state_key(self) -> str:  # ModelCheckpoint's: checkpoints of either class resume each other
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict) -> None:
        earlier, best = state_dict.get("dirpath"), state_dict.get("best_model_path")
        if self.monitor is None or earlier in (None, self.dirpath) or not best or not Path(best).is_file():
            return super().load_state_dict(state_dict)
        copy = Path(self.dirpath) / Path(best).name
        if not (copy.is_file() and filecmp.cmp(copy, best, shallow=False)):  # trainer.test restores it too
            copy.parent.mkdir(parents=True, exist_ok=True)
            with replacing(copy) as tmp:  # DDP: every rank restores it, and none may read half a file
                shutil.copyfile(best, tmp)
            log.info("resumed the best checkpoint so far: %s (from %s)", copy, best)
        moved = {"best_model_path": str(copy), "kth_best_model_path": str(copy), "last_model_path": ""}
        best_k = {str(copy): state_dict["best_model_score"]}
        super().load_state_dict({**state_dict, **moved, "dirpath": self.dirpath, "best_k_models": best_k})
