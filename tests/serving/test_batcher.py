"""The batcher alone, with a stand-in net that reads each image's first pixel as its text."""

import asyncio
import threading

import numpy as np
import pytest

from captcha_lab.inference.reader import Prediction
from captcha_lab.serving.batcher import Batcher, Stopped


class Net:
    def __init__(self, fail_on: int | None = None):
        self.batches: list[int] = []  # the size of each batch run
        self.threads: list[str] = []  # and the thread that ran it
        self.fail_on = fail_on

    def __call__(self, images) -> list[Prediction]:
        self.batches.append(len(images))
        self.threads.append(threading.current_thread().name)
        if any(int(image[0, 0]) == self.fail_on for image in images):
            raise RuntimeError("the net failed")
        return [Prediction(str(int(image[0, 0])), 1.0, (1.0,)) for image in images]


def image(value: int) -> np.ndarray:
    return np.full((2, 3), value, np.uint8)


def texts(predictions) -> list[str]:
    return [p.text for p in predictions]


async def started(net: Net, max_batch: int, max_wait_s: float = 0.0) -> Batcher:
    batcher = Batcher(net, max_batch, max_wait_s)
    await batcher.start()
    return batcher


def test_concurrent_requests_share_batches_and_get_their_own_answers():
    async def main():
        net = Net()
        batcher = await started(net, max_batch=8, max_wait_s=0.05)
        requests = [[image(i)] if i % 3 else [image(i), image(i + 100)] for i in range(12)]
        answers = await asyncio.gather(*(batcher.predict(r) for r in requests))
        await batcher.stop()
        return net, requests, answers

    net, requests, answers = asyncio.run(main())
    assert [texts(a) for a in answers] == [[str(int(i[0, 0])) for i in r] for r in requests]
    assert sum(net.batches) == 16 and max(net.batches) <= 8 and len(net.batches) < len(requests)


def test_a_request_larger_than_a_batch_is_run_whole_and_alone():
    async def main():
        net = Net()
        batcher = await started(net, max_batch=2)
        answers = await asyncio.gather(batcher.predict([image(1)]), batcher.predict([image(i) for i in range(5)]))
        await batcher.stop()
        return net, answers

    net, answers = asyncio.run(main())
    assert [texts(a) for a in answers] == [["1"], ["0", "1", "2", "3", "4"]]
    assert net.batches == [1, 5]  # whole jobs: the stand-in gets all 5 (a Reader splits them itself)


def test_a_failed_batch_fails_its_callers_only_and_the_batcher_goes_on():
    async def main():
        batcher = await started(Net(fail_on=7), max_batch=1)
        results = await asyncio.gather(batcher.predict([image(7)]), batcher.predict([image(8)]), return_exceptions=True)
        later = await batcher.predict([image(9)])
        await batcher.stop()
        return results, later

    (failed, fine), later = asyncio.run(main())
    assert isinstance(failed, RuntimeError) and texts(fine) == ["8"] and texts(later) == ["9"]


def test_stop_answers_what_is_queued_then_refuses():
    async def main():
        batcher = await started(Net(), max_batch=64, max_wait_s=10)  # would wait 10 s for a fuller batch
        waiting = asyncio.gather(*(batcher.predict([image(i)]) for i in range(3)))
        await asyncio.sleep(0.01)
        assert batcher.queued() == 3
        await asyncio.wait_for(batcher.stop(), 5)
        with pytest.raises(Stopped):
            await batcher.predict([image(0)])
        return await waiting

    assert [texts(a) for a in asyncio.run(main())] == [["0"], ["1"], ["2"]]


def test_a_lone_image_is_read_on_the_event_loop_and_more_on_the_worker_thread():
    async def main():
        net = Net()
        batcher = await started(net, max_batch=8)
        await batcher.predict([image(1)])
        await batcher.predict([image(1), image(2)])
        await batcher.stop()
        return net

    net = asyncio.run(main())
    assert net.batches == [1, 2]
    assert net.threads[0] == threading.main_thread().name and net.threads[1].startswith("batcher")


@pytest.mark.parametrize("max_batch, max_wait_s", [(0, 0.0), (1, -1.0)])
def test_settings_are_checked(max_batch, max_wait_s):
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        Batcher(Net(), max_batch, max_wait_s)


def test_a_cancelled_request_is_dropped_from_the_queue_unread():
    async def main():
        net = Net()
        batcher = await started(net, max_batch=64, max_wait_s=10)  # holds the batch for more requests
        gone = asyncio.ensure_future(batcher.predict([image(1), image(2)]))
        await asyncio.sleep(0.01)
        gone.cancel()  # its client went away, or a graceful stop timed out
        await asyncio.sleep(0.01)
        queued = batcher.queued()
        kept = asyncio.ensure_future(batcher.predict([image(3)]))
        await asyncio.sleep(0.01)
        await asyncio.wait_for(batcher.stop(), 5)
        return net, queued, await kept, batcher.images

    net, queued, kept, images = asyncio.run(main())
    assert queued == 0 and texts(kept) == ["3"]
    assert net.batches == [1] and images == 1  # the cancelled request's images never reached the net


def test_a_stopped_batcher_starts_again_and_one_not_started_says_so():
    async def main():
        batcher = Batcher(Net(), 8)
        with pytest.raises(RuntimeError, match="not started: call start"):
            await batcher.predict([image(1)])
        for _ in range(2):  # as a second lifespan of the same app
            await batcher.start()
            answer = await batcher.predict([image(1)])
            await batcher.stop()
        return answer

    assert texts(asyncio.run(main())) == ["1"]


class HeldNet(Net):
    """A Net whose batches wait on `release` (on the worker thread), so callers can go meanwhile."""

    def __init__(self):
        super().__init__()
        self.running, self.release = threading.Event(), threading.Event()

    def __call__(self, images) -> list[Prediction]:
        self.running.set()
        assert self.release.wait(5)
        return super().__call__(images)


def test_a_caller_gone_during_its_batch_leaves_the_others_their_own_answers():
    async def main():
        net = HeldNet()
        batcher = await started(net, max_batch=8, max_wait_s=0.05)
        jobs = [asyncio.ensure_future(batcher.predict([image(i), image(i)])) for i in (1, 2, 3)]  # 6 > inline
        await asyncio.get_running_loop().run_in_executor(None, net.running.wait, 5)
        jobs[0].cancel()  # while the batch runs: the others' answers lie after its images
        net.release.set()
        answers = await asyncio.wait_for(asyncio.gather(*jobs[1:]), 5)
        await batcher.stop()
        return net, answers

    net, answers = asyncio.run(main())
    assert net.batches == [6] and [texts(a) for a in answers] == [["2", "2"], ["3", "3"]]


def test_a_full_batch_waits_for_no_one():
    async def main():
        net = Net()
        batcher = await started(net, max_batch=4, max_wait_s=10)
        answers = await asyncio.wait_for(asyncio.gather(*(batcher.predict([image(i)]) for i in range(8))), 1)
        await batcher.stop()
        return net, answers

    net, answers = asyncio.run(main())
    assert [texts(a) for a in answers] == [[str(i)] for i in range(8)]
    assert net.batches == [4, 4]  # exactly full: one batch, not split, with no wait for more


def test_the_batcher_goes_on_after_every_caller_of_a_batch_left_during_its_wait():
    async def main():
        net = Net()
        batcher = await started(net, max_batch=4, max_wait_s=0.5)
        gone = asyncio.ensure_future(batcher.predict([image(9)]))
        await asyncio.sleep(0.01)
        gone.cancel()  # the only caller: the wait then ends with nobody to answer
        await asyncio.sleep(0.7)
        later = await asyncio.wait_for(batcher.predict([image(1)]), 1)
        await batcher.stop()
        return net, later

    net, later = asyncio.run(main())
    assert texts(later) == ["1"] and net.batches == [1]  # the gone caller's image never read
