"""An asyncio micro-batcher: requests that arrive within a short window share one predict call.

``submit`` queues an item and waits for its result; the service loop ``run`` (owned by the
application's TaskGroup) takes up to ``max_batch`` queued items once the first of them has waited
``window_ms`` (or at once when a full batch is queued) and runs ``predict_fn`` on them in a worker
thread, never on the event loop; with ``offload``, a batch goes there first (e.g. to a worker
process) and to ``predict_fn`` only when ``offload`` declines it. The queue is bounded: a
submit that finds ``max_queue`` items waiting raises `RecognizerOverloaded` and is counted.
When ``run`` is cancelled, every future it still owes is cancelled too, and it leaves no task
behind.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.errors import Overloaded

__all__ = ["BatcherStats", "Histogram", "MicroBatcher", "RecognizerOverloaded"]

T = TypeVar("T")
R = TypeVar("R")

OVERLOAD_RETRY_AFTER = 1
BATCH_SECONDS_BOUNDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_SIZE_BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)


class RecognizerOverloaded(Overloaded):
    """The recogniser's queue is full: the request was not queued; retry later."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"recognizer queue full ({queued} waiting)", OVERLOAD_RETRY_AFTER)
        self.queued = queued


@dataclass
class Histogram:
    """Observations per bucket (``counts[i]``: at most ``bounds[i]``; the last: above all) and
    their sum; read by the metrics endpoint."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


@dataclass
class BatcherStats:
    """Counters of a `MicroBatcher` (monotonic; ``offloaded``: batches ``offload`` took); the
    histograms get one observation per batch: its size and the seconds its predict call took
    (thread or process hand-off included)."""

    submitted: int = 0
    overflows: int = 0
    batches: int = 0
    items: int = 0
    failures: int = 0
    offloaded: int = 0
    batch_seconds: Histogram = field(default_factory=lambda: Histogram(BATCH_SECONDS_BOUNDS))
    batch_sizes: Histogram = field(default_factory=lambda: Histogram(BATCH_SIZE_BOUNDS))


class MicroBatcher(Generic[T, R]):
    """Batches ``submit``\\ ted items into ``predict_fn`` calls run in worker threads."""

    def __init__(
        self,
        predict_fn: Callable[[Sequence[T]], Sequence[R]],
        *,
        window_ms: float = 2.0,
        max_batch: int = 64,
        max_queue: int = 10_000,
        concurrency: int = 1,
        offload: Callable[[list[T]], Awaitable[Sequence[R]] | None] | None = None,
    ) -> None:
        """``concurrency``: batches allowed to run at the same time (one worker thread each).
        ``offload``: takes a batch and returns an awaitable of its results, or None to have
        ``predict_fn`` run it in a thread."""
        if window_ms < 0 or not math.isfinite(window_ms):
            raise ValueError(f"window_ms must be finite and >= 0, got {window_ms}")
        if max_batch < 1 or max_queue < 1 or concurrency < 1:
            raise ValueError("max_batch, max_queue and concurrency must be >= 1")
        self._predict = predict_fn
        self._offload = offload
        self._window = window_ms / 1000.0
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._concurrency = concurrency
        self._pending: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._running = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # run()'s: no getpid() per submit
        self.stats = BatcherStats()

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not yet handed to ``predict_fn``)."""
        return len(self._pending)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the returned future resolves to its result.

        Raises `RecognizerOverloaded` (counted in ``stats.overflows``) when the queue is full,
        and RuntimeError once the service loop has stopped.
        """
        if self._closed:
            raise RuntimeError("the micro-batcher has stopped")
        if len(self._pending) >= self._max_queue:
            self.stats.overflows += 1
            raise RecognizerOverloaded(len(self._pending))
        future: asyncio.Future[R] = (self._loop or asyncio.get_running_loop()).create_future()
        self._pending.append((item, future))
        self.stats.submitted += 1
        self._arrived.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()
        return future

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its result (see `submit_nowait` for the errors)."""
        return await self.submit_nowait(item)

    def _take_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        while self._pending and len(batch) < self._max_batch:
            item, future = self._pending.popleft()
            if not future.done():  # a caller that gave up (cancelled) costs nothing
                batch.append((item, future))
        if len(self._pending) < self._max_batch:
            self._full.clear()
        return batch

    async def _run_batch(
        self,
        executor: ThreadPoolExecutor,
        batch: list[tuple[T, asyncio.Future[R]]],
        slots: asyncio.Semaphore,
    ) -> None:
        try:
            items = [item for item, _ in batch]
            started = time.perf_counter()
            try:
                offloaded = self._offload(items) if self._offload is not None else None
                if offloaded is not None:
                    self.stats.offloaded += 1
                    results = await offloaded
                else:
                    results = await asyncio.get_running_loop().run_in_executor(
                        executor, self._predict, items
                    )
                if len(results) != len(items):
                    raise RuntimeError(
                        f"predict_fn returned {len(results)} results for {len(items)} items"
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failures += 1
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            stats = self.stats
            stats.batches += 1
            stats.items += len(items)
            stats.batch_seconds.observe(time.perf_counter() - started)
            stats.batch_sizes.observe(len(items))
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            for _, future in batch:
                future.cancel()  # no-op for the futures that got their result
            slots.release()

    async def run(self) -> None:
        """The service loop; run it in the application's TaskGroup and cancel it to stop."""
        if self._running or self._closed:
            raise RuntimeError("MicroBatcher.run() may be started only once")
        self._running = True
        self._loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self._concurrency)
        executor = ThreadPoolExecutor(
            max_workers=self._concurrency, thread_name_prefix="microbatch"
        )
        try:
            async with asyncio.TaskGroup() as group:
                while True:
                    if not self._pending:
                        self._arrived.clear()
                        await self._arrived.wait()
                    if len(self._pending) < self._max_batch and self._window > 0:
                        try:
                            async with asyncio.timeout(self._window):
                                await self._full.wait()
                        except TimeoutError:
                            pass
                    await slots.acquire()
                    batch = self._take_batch()
                    if not batch:
                        slots.release()
                        continue
                    group.create_task(self._run_batch(executor, batch, slots))
        finally:
            self._closed = True
            while self._pending:
                self._pending.popleft()[1].cancel()
            executor.shutdown(wait=False, cancel_futures=True)
