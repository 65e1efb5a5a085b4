"""The asyncio micro-batcher: batching, result routing, overflow, errors and cancellation."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence

import pytest

from gateway.errors import Overloaded
from gateway.recognizer.microbatch import MicroBatcher, RecognizerOverloaded


class Recorder:
    """A predict_fn that doubles its inputs and records each call and its thread."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.threads: set[int] = set()
        self.gate = gate

    def __call__(self, items: Sequence[int]) -> list[int]:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(list(items))
        self.threads.add(threading.get_ident())
        return [item * 2 for item in items]


async def test_burst_costs_ceil_n_over_max_batch_calls_and_maps_results_back() -> None:
    """A burst of N submits is served by ceil(N/max_batch) calls, each caller gets its result."""
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, window_ms=5.0, max_batch=64)
    n = 150
    async with asyncio.TaskGroup() as group:
        service = group.create_task(batcher.run())
        results = await asyncio.gather(*(batcher.submit(i) for i in range(n)))
        service.cancel()
    assert results == [i * 2 for i in range(n)]
    assert len(recorder.calls) == math.ceil(n / 64)
    assert sorted(x for call in recorder.calls for x in call) == list(range(n))
    assert batcher.stats.batches == 3 and batcher.stats.items == n


async def test_predict_runs_in_a_worker_thread_not_on_the_event_loop() -> None:
    """predict_fn is never called on the event loop's thread."""
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, window_ms=0.0)
    async with asyncio.TaskGroup() as group:
        service = group.create_task(batcher.run())
        assert await batcher.submit(21) == 42
        service.cancel()
    assert recorder.threads and threading.get_ident() not in recorder.threads


async def test_requests_within_the_window_share_one_call() -> None:
    """Submits spread over less than the window are batched into one predict call."""
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, window_ms=200.0, max_batch=64)
    async with asyncio.TaskGroup() as group:
        service = group.create_task(batcher.run())
        futures = []
        for i in range(5):
            futures.append(batcher.submit_nowait(i))
            await asyncio.sleep(0.005)
        assert await asyncio.gather(*futures) == [0, 2, 4, 6, 8]
        service.cancel()
    assert recorder.calls == [[0, 1, 2, 3, 4]]


async def test_overflow_raises_and_is_counted() -> None:
    """A submit beyond max_queue raises RecognizerOverloaded (an Overloaded) and is counted."""
    batcher: MicroBatcher[int, int] = MicroBatcher(Recorder(), max_queue=3)
    futures = [batcher.submit_nowait(i) for i in range(3)]
    for _ in range(2):
        with pytest.raises(RecognizerOverloaded) as caught:
            batcher.submit_nowait(99)
        assert isinstance(caught.value, Overloaded)
    assert batcher.stats.overflows == 2 and batcher.queued == 3
    for future in futures:
        future.cancel()


async def test_predict_errors_reach_every_caller_of_the_batch() -> None:
    """An exception of predict_fn is set on each future of the failed batch; the loop goes on."""
    calls = 0

    def flaky(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")
        return list(items)

    batcher: MicroBatcher[int, int] = MicroBatcher(flaky, window_ms=20.0)
    async with asyncio.TaskGroup() as group:
        service = group.create_task(batcher.run())
        first = [batcher.submit_nowait(i) for i in range(3)]
        outcomes = await asyncio.gather(*first, return_exceptions=True)
        assert all(isinstance(outcome, ValueError) for outcome in outcomes)
        assert await batcher.submit(7) == 7
        service.cancel()
    assert batcher.stats.failures == 1


async def test_cancellation_cancels_pending_futures_and_leaves_no_tasks() -> None:
    """Cancelling run() cancels queued and in-flight futures and leaves no task behind."""
    gate = threading.Event()
    batcher: MicroBatcher[int, int] = MicroBatcher(Recorder(gate), window_ms=0.0, max_batch=2)
    before = asyncio.all_tasks()
    service = asyncio.get_running_loop().create_task(batcher.run())
    futures = [batcher.submit_nowait(i) for i in range(6)]
    await asyncio.sleep(0.05)  # the first batch is now blocked in the worker thread
    service.cancel()
    with pytest.raises(asyncio.CancelledError):
        await service
    gate.set()
    assert all(future.cancelled() for future in futures)
    assert asyncio.all_tasks() == before
    with pytest.raises(RuntimeError):
        batcher.submit_nowait(1)


async def test_a_caller_that_gives_up_is_skipped() -> None:
    """A future cancelled by its caller before batching is not sent to predict_fn."""
    recorder = Recorder()
    batcher: MicroBatcher[int, int] = MicroBatcher(recorder, window_ms=10.0)
    gone = batcher.submit_nowait(1)
    kept = batcher.submit_nowait(2)
    gone.cancel()
    async with asyncio.TaskGroup() as group:
        service = group.create_task(batcher.run())
        assert await kept == 4
        service.cancel()
    assert recorder.calls == [[2]]
