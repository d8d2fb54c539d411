"""Batching across requests: the images of every request that is waiting are run through the
net as one ONNX Runtime batch, and each request gets back its own predictions.

Requests queue their prepared images on the event loop; one task takes as many whole requests as
fit in `max_batch` images and runs them on one worker thread (ONNX Runtime releases the GIL while
it computes, so the event loop goes on taking requests meanwhile). Under load the queue fills
while a batch runs, so batches form without waiting; `max_wait_s` can also hold a batch that is
not full for more requests, at that cost in latency. A batch of at most `inline` images (a lone
request's captcha) is read on the event loop itself: handing it to the thread and back wakes two
threads, which on a busy machine takes longer than the read (docs/serving.md)."""

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from captcha_lab.inference.reader import Prediction

Predict = Callable[[Sequence[np.ndarray]], list[Prediction]]  # N prepared images -> N predictions


class Stopped(Exception):
    """A request arrived after `stop`."""


@dataclass
class Job:
    images: Sequence[np.ndarray]  # one request's prepared images (Reader.prepare)
    answer: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher:
    def __init__(self, predict: Predict, max_batch: int, max_wait_s: float = 0.0, inline: int = 1):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be at least 1 and max_wait_s at least 0, got {max_batch}, {max_wait_s}")
        self.predict_batch, self.max_batch, self.max_wait_s, self.inline = predict, max_batch, max_wait_s, inline
        self.batches = 0  # batches run so far, and the images in them (/health)
        self.images = 0
        self._pending: deque[Job] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._stopping = False  # the app's lifespan may start it again after a stop
        # One thread: batches run one after the other, each with all of ONNX Runtime's threads.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="batcher")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Run what is queued, then end; later `predict` calls raise Stopped."""
        self._stopping = True
        if self._task is not None:
            self._arrived.set()
            await self._task
            self._thread.shutdown()

    async def predict(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """One prediction per image, in order, from a batch shared with concurrent callers."""
        if self._task is None:
            raise RuntimeError("the batcher is not started: call start() first (the app's lifespan does)")
        if self._stopping:
            raise Stopped("the server is stopping")
        job = Job(images)
        self._pending.append(job)
        self._arrived.set()
        return await job.answer

    def queued(self) -> int:
        """Images waiting for a batch."""
        return sum(len(job.images) for job in self._waiting())

    def _waiting(self) -> deque[Job]:
        """The queue, less jobs whose callers were cancelled meanwhile (their answer is done)."""
        if any(job.answer.done() for job in self._pending):
            self._pending = deque(job for job in self._pending if not job.answer.done())
        return self._pending

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while jobs := await self._next_batch():
            images = [image for job in jobs for image in job.images]
            try:
                if len(images) <= self.inline:
                    predictions = self.predict_batch(images)
                else:
                    predictions = await loop.run_in_executor(self._thread, self.predict_batch, images)
            except Exception as e:  # the batch's callers get the error; the batcher goes on
                for job in jobs:
                    if not job.answer.done():
                        job.answer.set_exception(e)
                continue
            self.batches, self.images = self.batches + 1, self.images + len(images)
            start = 0
            for job in jobs:
                if not job.answer.done():  # done: its caller was cancelled meanwhile
                    job.answer.set_result(predictions[start : start + len(job.images)])
                start += len(job.images)

    async def _next_batch(self) -> list[Job]:
        """The next whole jobs of at most `max_batch` images (a larger job alone), oldest first;
        [] once stopping and nothing is left."""
        while not self._waiting():
            if self._stopping:
                return []
            self._arrived.clear()
            await self._arrived.wait()
        if self.max_wait_s > 0:
            await self._fill(asyncio.get_running_loop().time() + self.max_wait_s)
            if not self._waiting():  # every caller was cancelled during the wait
                return await self._next_batch()
        jobs = [self._pending.popleft()]
        size = len(jobs[0].images)
        while self._pending and size + len(self._pending[0].images) <= self.max_batch:
            size += len(self._pending[0].images)
            jobs.append(self._pending.popleft())
        return jobs

    async def _fill(self, deadline: float) -> None:
        """Wait until `max_batch` images are queued, the deadline passes or the batcher stops."""
        loop = asyncio.get_running_loop()
        while self.queued() < self.max_batch and not self._stopping:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except asyncio.TimeoutError:  # TimeoutError from 3.11 on
                return
