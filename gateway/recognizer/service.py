"""The local recogniser as the pipeline uses it: the text model behind a micro-batcher.

With ``worker = "process"`` (the default) the batches run in a child process
(`gateway.recognizer.remote`); the model loaded here checks the artifact, names the version
and runs the batches in a thread while that worker is not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence

import structlog

from gateway.recognizer.microbatch import MicroBatcher
from gateway.recognizer.occupancy import Occupancy, OccupancyModel
from gateway.recognizer.remote import WorkerFailed, WorkerProcess
from gateway.recognizer.text_model import TextIntentModel
from schemas import Intent
from schemas.config import RecognizerConfig

log = structlog.get_logger(__name__)


class LocalRecognizer:
    """`submit(text)` -> a future Intent; `run()` is the batching service (TaskGroup-owned)."""

    name = "local"

    def __init__(self, model: TextIntentModel, config: RecognizerConfig) -> None:
        self.model = model
        self.version = model.version
        self.worker: WorkerProcess | None = None
        if config.worker == "process":
            self.worker = WorkerProcess(
                model=None if config.model_path is None else str(config.model_path),
                threshold=model.threshold, threads=config.threads, sha256=model.sha256,
            )
        self.batcher: MicroBatcher[str, Intent] = MicroBatcher(
            model.predict,
            window_ms=config.batch_window_ms,
            max_batch=config.max_batch,
            max_queue=config.max_queue,
            # Two batches in flight: the worker computes one while the next waits in its pipe.
            concurrency=2 if self.worker is not None else 1,
            offload=None if self.worker is None else self._offload,
        )

    @classmethod
    async def load(cls, config: RecognizerConfig) -> LocalRecognizer:
        """Load the model in a worker thread (it reads and checks a few MB)."""
        model = await asyncio.to_thread(
            TextIntentModel.load, config.model_path,
            threshold=config.confidence_threshold, intra_op_threads=config.threads,
        )
        return cls(model, config)

    def submit(self, text: str) -> asyncio.Future[Intent]:
        return self.batcher.submit_nowait(text)

    def _offload(self, texts: list[str]) -> Awaitable[Sequence[Intent]] | None:
        assert self.worker is not None
        answer = self.worker.predict(texts)
        return None if answer is None else self._answer_or_rerun(answer, texts)

    async def _answer_or_rerun(
        self, answer: asyncio.Future[list[Intent]], texts: list[str]
    ) -> Sequence[Intent]:
        """A batch the worker lost (it died with the batch) runs here instead: not dropped."""
        try:
            return await answer
        except WorkerFailed as exc:
            log.warning("recognizer_batch_rerun", size=len(texts), error=str(exc))
            return await asyncio.to_thread(self.model.predict, texts)

    async def run(self) -> None:
        if self.worker is None:
            await self.batcher.run()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self.worker.run(), name="recognizer-worker")
            group.create_task(self.batcher.run(), name="recognizer-batcher")


class OccupancyRecognizer:
    """Readings of a room -> occupied/vacant with the occupancy model, micro-batched (in a
    thread: a few small batches per minute, nothing worth a process)."""

    name = "local"
    worker: WorkerProcess | None = None

    def __init__(self, model: OccupancyModel, config: RecognizerConfig) -> None:
        self.model = model
        self.version = model.version
        self.required = frozenset(model.required)  # see `OccupancyRecognizer` in pipeline
        self.batcher: MicroBatcher[Mapping[str, object], Occupancy | None] = MicroBatcher(
            model.predict,
            window_ms=config.batch_window_ms,
            max_batch=config.max_batch,
            max_queue=config.max_queue,
        )

    @classmethod
    async def load(cls, config: RecognizerConfig) -> OccupancyRecognizer:
        return cls(await asyncio.to_thread(OccupancyModel.load), config)

    def submit(self, features: Mapping[str, object]) -> asyncio.Future[Occupancy | None]:
        return self.batcher.submit_nowait(features)

    async def run(self) -> None:
        await self.batcher.run()
