"""The parent side of the recogniser's worker process (see `gateway.recognizer.worker`).

`WorkerProcess.run` (TaskGroup-owned) starts the child, restarts it with backoff when it dies,
and stops it when cancelled. `predict` sends a batch and returns a future of its intents, or
None while no worker is ready: the caller then runs the model in a thread of its own, so
commands are recognised while the worker starts or restarts. Frames are read by the event
loop itself (a subprocess protocol): no thread of the gateway waits on the pipe.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, cast

import structlog

from gateway.bridge.link import backoff_delays
from gateway.recognizer.frames import FrameDecoder, FrameError, encode_frame
from schemas import Intent

__all__ = ["WorkerFailed", "WorkerProcess"]

log = structlog.get_logger(__name__)

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0


class WorkerFailed(RuntimeError):
    """The worker process died, misbehaved or refused a batch."""


class _Channel(asyncio.SubprocessProtocol):
    """One child's pipes: frames out on stdin, frames in from stdout, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.SubprocessTransport | None = None
        self._loop = asyncio.get_running_loop()  # once: on Python 3.11 each call is a getpid()
        self.ready: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self.exited: asyncio.Future[int | None] = self._loop.create_future()
        self.waiting: deque[asyncio.Future[list[Intent]]] = deque()
        self._decoder = FrameDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes; they have the interface.
        self.transport = cast(asyncio.SubprocessTransport, transport)

    def send(self, texts: Sequence[str]) -> asyncio.Future[list[Intent]]:
        future: asyncio.Future[list[Intent]] = self._loop.create_future()
        if self.exited.done():  # gone, and its supervisor has not noticed yet
            future.set_exception(WorkerFailed("the recognizer worker has exited"))
            return future
        assert self.transport is not None
        stdin = cast(asyncio.WriteTransport, self.transport.get_pipe_transport(0))
        stdin.write(encode_frame(list(texts)))
        self.waiting.append(future)
        return future

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd != 1 or isinstance(data, str):
            return
        try:
            for frame in self._decoder.feed(data):
                self._on_frame(frame)
        except (FrameError, WorkerFailed) as exc:
            log.error("recognizer_worker_protocol_error", error=str(exc))
            self.fail(WorkerFailed(str(exc)))
            self.kill()

    def _on_frame(self, frame: Any) -> None:
        if not isinstance(frame, dict):
            raise FrameError(f"unexpected frame {frame!r:.80}")
        if "ready" in frame:
            if not self.ready.done():
                self.ready.set_result(frame["ready"])
            return
        if not self.waiting:
            raise FrameError("an answer nobody asked for")
        future = self.waiting.popleft()
        if "error" in frame:
            if not future.done():
                future.set_exception(WorkerFailed(str(frame["error"])))
            return
        try:
            intents = [
                Intent(name=name, confidence=confidence, slots=slots)
                for name, confidence, slots in frame["ok"]
            ]
        except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError too
            raise FrameError(f"malformed answer: {exc!r:.200}") from exc
        if not future.done():
            future.set_result(intents)

    def process_exited(self) -> None:
        assert self.transport is not None
        code = self.transport.get_returncode()
        self.fail(WorkerFailed(f"the recognizer worker exited (code {code})"))
        if not self.exited.done():
            self.exited.set_result(code)

    def fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # retrieved: the supervisor reads `exited`
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def kill(self) -> None:
        if self.transport is not None and self.transport.get_returncode() is None:
            self.transport.kill()


class WorkerProcess:
    """Supervises one recogniser worker process; see the module docstring."""

    def __init__(
        self, *, model: str | None, threshold: float, threads: int, sha256: str,
        python: str = sys.executable, restart_delays: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        """``sha256``: the model the gateway loaded itself; a worker that loaded other bytes
        (the file changed in between) is refused. ``restart_delays``: the first and the
        largest wait before restarting a worker that died (jittered exponential backoff)."""
        self._argv = [python, "-m", "gateway.recognizer.worker",
                      "--threshold", repr(threshold), "--threads", str(threads)]
        if model is not None:
            self._argv += ["--model", model]
        self._sha256 = sha256
        self._restart_delays = restart_delays
        self._channel: _Channel | None = None  # only while ready
        self._served = False
        self.pid: int | None = None
        self.counters: Counter[str] = Counter()

    @property
    def ready(self) -> bool:
        return self._channel is not None

    def predict(self, texts: Sequence[str]) -> asyncio.Future[list[Intent]] | None:
        """The batch's intents, in order; None when no worker is ready (run it yourself)."""
        channel = self._channel
        if channel is None:
            return None
        self.counters["batches"] += 1
        return channel.send(texts)

    async def run(self) -> None:
        delays = backoff_delays(*self._restart_delays)
        while True:
            try:
                code = await self._serve_once()
            except Exception as exc:  # e.g. the interpreter cannot be started: retry later
                log.exception("recognizer_worker_failed")
                code = repr(exc)
            self.counters["exits"] += 1
            if self._served:  # it had been working: start the backoff over
                delays = backoff_delays(*self._restart_delays)
            delay = next(delays)
            log.error("recognizer_worker_exited", code=code, restart_in_s=round(delay, 2))
            await asyncio.sleep(delay)

    async def _serve_once(self) -> int | str | None:
        self._served = False
        loop = asyncio.get_running_loop()
        transport, channel = await loop.subprocess_exec(
            _Channel, *self._argv,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
        )
        self.counters["starts"] += 1
        try:
            try:
                async with asyncio.timeout(READY_TIMEOUT):
                    ready = await channel.ready
            except (TimeoutError, WorkerFailed) as exc:
                log.error("recognizer_worker_not_ready", error=str(exc) or "timeout")
                channel.kill()
                return await asyncio.shield(channel.exited)
            if ready.get("sha256") != self._sha256:
                log.error("recognizer_worker_model_mismatch", expected=self._sha256,
                          loaded=ready.get("sha256"))
                channel.kill()
                return await asyncio.shield(channel.exited)
            self.pid = transport.get_pid()
            self._channel = channel
            self._served = True
            log.info("recognizer_worker_ready", pid=self.pid, version=ready.get("version"))
            # Shielded: cancelling this task must not cancel the future `_stop` waits on.
            return await asyncio.shield(channel.exited)
        finally:
            self._channel = None
            self.pid = None
            await self._stop(transport, channel)

    async def _stop(self, transport: asyncio.SubprocessTransport, channel: _Channel) -> None:
        """Close stdin (the worker exits at EOF); kill it if it does not within the bound."""
        channel.fail(WorkerFailed("the recognizer worker stopped"))
        if transport.get_returncode() is None:
            stdin = transport.get_pipe_transport(0)
            if stdin is not None:
                stdin.close()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await asyncio.shield(channel.exited)
            except TimeoutError:
                channel.kill()
                await asyncio.shield(channel.exited)
        transport.close()
