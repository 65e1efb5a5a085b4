"""Run a fleet with or without the live view, in this process or in worker processes.

Workers (`--workers N`): each process runs the sensors whose index is its number modulo N, on
its own uvloop (when installed) and sockets; worker 0 also runs the panels, actuators, the
decision monitor and the upstream watcher. The workers set up their devices, wait for each
other at a barrier so that their clocks start together, send a snapshot every REFRESH seconds
and their stats at the end; the parent adds them up into one report.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console

from schemas.scenario import Scenario
from sensor_sim.fleet import Fleet, Target
from sensor_sim.live import REFRESH, LiveView, Snapshot
from sensor_sim.report import Stats

T = TypeVar("T")
BARRIER_TIMEOUT = 600.0  # setting up 10,000 devices takes seconds, not minutes


class WorkerFailed(Exception):
    """A worker process failed; the message is its error."""


@dataclass(frozen=True)
class RunSpec:
    scenario: Scenario
    target: Target
    duration: float
    devices: int | None = None
    rate: float | None = None
    broker: str = ""
    mountpoint: str = "edge/site1/"

    def fleet(self, shard: tuple[int, int] = (0, 1)) -> Fleet:
        return Fleet(self.scenario, self.target, duration=self.duration, devices=self.devices,
                     rate=self.rate, broker=self.broker, mountpoint=self.mountpoint,
                     shard=shard)


def run_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on uvloop when it is installed (the simulator's ceiling doubles)."""
    try:
        import uvloop  # noqa: PLC0415 - optional accelerator
    except ImportError:
        return asyncio.run(main())
    result: T = uvloop.run(main())
    return result


async def run_fleet(fleet: Fleet, view: LiveView | None) -> dict[str, Any]:
    """Run one fleet in this loop; with a view, redraw it every REFRESH seconds, without one
    say on standard error when the clock starts."""
    announced = False
    async with asyncio.TaskGroup() as tg, _stop_on_signal(fleet):
        task = tg.create_task(fleet.run())
        while not task.done():
            if view is not None:
                view.update(Snapshot.of(fleet))
            elif not announced and fleet.phase != "setup":
                announced = True
                _announce(len(fleet.devices), fleet.duration)
            await asyncio.wait({task}, timeout=REFRESH)
    if view is not None:
        view.update(Snapshot.of(fleet))
    return task.result()


@contextlib.asynccontextmanager
async def _stop_on_signal(fleet: Fleet) -> AsyncIterator[None]:
    """SIGINT/SIGTERM end the run early (the report is still made); a second one aborts."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stop() -> None:
        if fleet.stopped:  # asked twice: give up on the report
            raise KeyboardInterrupt
        fleet.stop()

    for signum in signals:
        loop.add_signal_handler(signum, stop)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _announce(devices: int, duration: float) -> None:
    """Without the live view, one line on standard error when the clock starts."""
    sys.stderr.write(f"sensor-sim: {devices} devices connected, sending for {duration:g} s "
                     "(Ctrl-C ends early)\n")
    sys.stderr.flush()


def run(spec: RunSpec, *, workers: int = 1, live: bool = False,
        console: Console | None = None) -> dict[str, Any]:
    """Run the whole fleet; the report."""
    console = console or Console()
    view = LiveView(console) if live else None
    if workers <= 1:
        if view is None:
            return run_loop(lambda: run_fleet(spec.fleet(), None))
        with view:
            return run_loop(lambda: run_fleet(spec.fleet(), view))
    if view is None:
        return _run_workers(spec, workers, None)
    with view:
        return _run_workers(spec, workers, view)


# --- worker processes -------------------------------------------------------------------------

def _worker(spec: RunSpec, shard: tuple[int, int], out: Any, barrier: Any) -> None:
    async def main() -> None:
        fleet = spec.fleet(shard)

        async def started() -> None:
            await asyncio.to_thread(barrier.wait, BARRIER_TIMEOUT)

        async with asyncio.TaskGroup() as tg, _stop_on_signal(fleet):
            task = tg.create_task(fleet.measure(started))
            while not task.done():
                out.put(("snapshot", shard[0], Snapshot.of(fleet)))
                await asyncio.wait({task}, timeout=REFRESH)
        out.put(("done", shard[0], (fleet.stats, fleet.elapsed, len(fleet.devices),
                                    fleet.offered_rate)))

    try:
        run_loop(main)
    except BaseException as exc:
        out.put(("error", shard[0], repr(exc)))
        barrier.abort()
        raise


def _run_workers(spec: RunSpec, workers: int, view: LiveView | None) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    barrier = context.Barrier(workers)
    procs = [context.Process(target=_worker, args=(spec, (i, workers), out, barrier),
                             name=f"sensor-sim-{i}", daemon=True) for i in range(workers)]
    for proc in procs:
        proc.start()
    snapshots: dict[int, Snapshot] = {}
    results: dict[int, tuple[Stats, float, int, float]] = {}
    # Ctrl-C reaches the workers too (one process group): they stop and report, we collect.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    announced = False
    try:
        while len(results) < workers:
            try:
                kind, index, body = out.get(timeout=REFRESH)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise WorkerFailed("a worker process died") from None
                continue
            if kind == "error":
                raise WorkerFailed(f"worker {index}: {body}")
            if kind == "snapshot":
                snapshots[index] = body
                if len(snapshots) == workers:
                    merged = _merged(list(snapshots.values()))
                    if view is not None:
                        view.update(merged)
                    elif not announced and merged.phase != "setup":
                        announced = True
                        _announce(merged.devices, spec.duration)
            else:
                results[index] = body
    finally:
        signal.signal(signal.SIGINT, previous)
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    stats = Stats()
    for worker_stats, _, _, _ in results.values():
        stats.merge(worker_stats)
    return stats.report(
        scenario=spec.scenario.name,
        devices=sum(r[2] for r in results.values()),
        duration=spec.duration,
        elapsed=max(r[1] for r in results.values()),
        offered_rate=sum(r[3] for r in results.values()),
    )


def _merged(snapshots: list[Snapshot]) -> Snapshot:
    total = Snapshot()
    total.phase = snapshots[0].phase
    for snap in snapshots:
        total.add(snap)
    return total
