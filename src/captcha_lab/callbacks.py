"""Lightning callbacks of our own."""

import statistics
import time

import lightning as L


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
