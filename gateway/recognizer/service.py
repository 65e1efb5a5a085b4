"""The local recogniser as the pipeline uses it: the text model behind a micro-batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from gateway.recognizer.microbatch import MicroBatcher
from gateway.recognizer.occupancy import Occupancy, OccupancyModel
from gateway.recognizer.text_model import TextIntentModel
from schemas import Intent
from schemas.config import RecognizerConfig


class LocalRecognizer:
    """`submit(text)` -> a future Intent; `run()` is the batching service (TaskGroup-owned)."""

    name = "local"

    def __init__(self, model: TextIntentModel, config: RecognizerConfig) -> None:
        self.model = model
        self.version = model.version
        self.batcher: MicroBatcher[str, Intent] = MicroBatcher(
            model.predict,
            window_ms=config.batch_window_ms,
            max_batch=config.max_batch,
            max_queue=config.max_queue,
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

    async def run(self) -> None:
        await self.batcher.run()


class OccupancyRecognizer:
    """Readings of a room -> occupied/vacant with the occupancy model, micro-batched."""

    name = "local"

    def __init__(self, model: OccupancyModel, config: RecognizerConfig) -> None:
        self.model = model
        self.version = model.version
        self.batcher: MicroBatcher[Mapping[str, object], Occupancy | None] = MicroBatcher(
            model.predict,
            window_ms=config.batch_window_ms,
            max_batch=config.max_batch,
            max_queue=config.max_queue,
        )

    @classmethod
    async def load(cls, config: RecognizerConfig) -> OccupancyRecognizer:
        return cls(await asyncio.to_thread(OccupancyModel.load), config)

    def wants(self, features: Mapping[str, object]) -> bool:
        """Whether these readings carry everything the model needs."""
        return all(name in features for name in self.model.required)

    def submit(self, features: Mapping[str, object]) -> asyncio.Future[Occupancy | None]:
        return self.batcher.submit_nowait(features)

    async def run(self) -> None:
        await self.batcher.run()
