"""Local intent recognition: the text-intent model (ONNX) and its asyncio micro-batcher.

`LocalRecognizer` (service.py) is what the pipeline uses: ``submit(text)`` returns a future
`Intent`, the model runs in a worker thread on micro-batches, and ``run()`` is the service loop
that the application's TaskGroup owns. With a cloud recogniser (docs/cloud.md) the pipeline
asks `policy.EdgeFirstPolicy` instead, which escalates unsure answers through `cloud.CloudClient`
while `failover.Failover` (driven by `heartbeat.CloudSupervisor`) says the cloud is ONLINE.
"""

from __future__ import annotations

from gateway.recognizer.microbatch import BatcherStats, MicroBatcher, RecognizerOverloaded
from gateway.recognizer.service import LocalRecognizer
from gateway.recognizer.slots import SlotExtractor, SlotSpan
from gateway.recognizer.text_model import OTHER, ModelIntegrityError, TextIntentModel

__all__ = [
    "OTHER",
    "BatcherStats",
    "LocalRecognizer",
    "MicroBatcher",
    "ModelIntegrityError",
    "RecognizerOverloaded",
    "SlotExtractor",
    "SlotSpan",
    "TextIntentModel",
]
