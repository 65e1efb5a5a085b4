"""What the HTTP endpoint reads from the running gateway (read-only views, no imports of app.py).

`gateway.app.Gateway` satisfies `GatewaySource`; tests can pass a small stand-in instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from gateway.coap.server import CoapServer
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.delivery.uplink import SpoolingLink
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import Address
from gateway.pipeline.ingest import Pipeline
from gateway.recognizer.microbatch import MicroBatcher
from gateway.recognizer.remote import WorkerProcess
from gateway.router import MqttSnRouter

__all__ = ["BatchedRecognizer", "GatewaySource", "LoadedModel", "RecognizerModeSource"]


class RecognizerModeSource(Protocol):
    """The cloud failover state: its current mode ("online" or "degraded") and the seconds
    spent in each mode so far (the current stretch included)."""

    @property
    def mode(self) -> str: ...

    def mode_seconds(self) -> Mapping[str, float]: ...


class LoadedModel(Protocol):
    @property
    def version(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def manifest(self) -> Mapping[str, Any]: ...


class BatchedRecognizer(Protocol):
    """A local recogniser: its model and the micro-batcher in front of it."""

    @property
    def model(self) -> LoadedModel: ...

    @property
    def batcher(self) -> MicroBatcher[Any, Any]: ...

    @property
    def worker(self) -> WorkerProcess | None:
        """The worker process that runs the batches, if the recogniser has one."""
        ...


class GatewaySource(Protocol):
    """The gateway's parts as the endpoint sees them; None until assembled (or when off)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def stopping(self) -> bool: ...

    @property
    def mqttsn_address(self) -> Address | None: ...

    @property
    def core(self) -> GatewayCore | None: ...

    @property
    def router(self) -> MqttSnRouter | None: ...

    @property
    def bus(self) -> MessageBus | None: ...

    @property
    def uplink(self) -> SpoolingLink | None: ...

    @property
    def pipeline(self) -> Pipeline | None: ...

    @property
    def coap(self) -> CoapServer | None: ...

    @property
    def recognizers(self) -> Sequence[BatchedRecognizer]: ...

    @property
    def recognizer_mode(self) -> RecognizerModeSource | None: ...
