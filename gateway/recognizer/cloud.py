"""The cloud recogniser client: MQTT v5 request/response through the broker link.

``submit(text)`` returns a future `Intent`, like the local recogniser. Each request is one QoS 0
PUBLISH of a `schemas.cloud.CloudRequest` on the request topic, with this gateway's response
topic and a fresh correlation id as MQTT v5 properties; the future resolves when a
`CloudResponse` with that correlation id arrives. The client keeps no deadline of its own: the
caller (the policy, the heartbeat loop) cancels what it no longer waits for, which forgets the
request; a late answer is then counted and dropped.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Callable
from itertools import count
from typing import Literal, Protocol, runtime_checkable

import structlog
from pydantic import ValidationError

from gateway.bridge.link import ResponseHandler
from gateway.errors import GatewayError
from schemas import Intent
from schemas.cloud import CloudConfig, CloudRequest, CloudResponse, RequestKind

__all__ = [
    "MISS_REASONS",
    "CloudClient",
    "CloudLink",
    "CloudUnavailable",
    "RequestChannel",
]

log = structlog.get_logger(__name__)

FailureReason = Literal["unsent", "busy", "error"]

MISS_REASONS = frozenset({"unsent", "timeout"})
"""Failures that say the cloud is unreachable: not sendable, or not answered by the deadline
(the others: it answered with a refusal, too much is pending, or the gateway is stopping)."""


@runtime_checkable
class RequestChannel(Protocol):
    """What the client needs from the broker link (``GmqttLink`` provides it)."""

    def request(
        self, topic: str, payload: bytes, *, response_topic: str, correlation_data: bytes
    ) -> bool:
        """Send at QoS 0 with MQTT v5 response topic (local: under the mountpoint) and
        correlation data; ``topic`` is a broker topic. False when it could not be sent."""
        ...

    def add_responder(self, topic: str, handler: ResponseHandler) -> None:
        """Subscribe to the local ``topic``; its messages go to ``handler``, not to the bus."""
        ...


@runtime_checkable
class CloudLink(RequestChannel, Protocol):
    """A request channel that also owns the retained gateway status."""

    def set_status(self, payload: bytes) -> None:
        """Publish ``payload`` retained on the status topic, now and after every reconnect."""
        ...


class CloudUnavailable(GatewayError):
    """A cloud request failed: ``reason`` is unsent (no link, or not MQTT v5), busy (too
    many pending) or error (the service refused it or answered garbage)."""

    def __init__(self, reason: FailureReason, detail: str = "") -> None:
        super().__init__(f"cloud recognizer {reason}" + (f": {detail}" if detail else ""))
        self.reason: FailureReason = reason


class CloudClient:
    """Requests to the cloud recogniser, matched to their answers by correlation data."""

    name = "cloud"

    def __init__(
        self,
        channel: RequestChannel,
        config: CloudConfig,
        *,
        gateway_id: str,
        response_topic: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.version = "unknown"  # the cloud model's version, as its last answer said
        self._channel = channel
        self._config = config
        self._gateway_id = gateway_id
        self._response_topic = response_topic
        self._wall_clock = wall_clock
        self._prefix = secrets.token_bytes(4)  # late answers to an earlier run never match
        self._ids = count(1)
        self._pending: dict[bytes, asyncio.Future[CloudResponse]] = {}
        self.counters: Counter[str] = Counter()
        channel.add_responder(response_topic, self._on_response)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, text: str, device_id: str | None = None) -> asyncio.Future[Intent]:
        """The cloud's intent for ``text``; raises CloudUnavailable (unsent, busy) at once.

        The future fails with CloudUnavailable("error") when the service refuses the request;
        cancelling it forgets the request.
        """
        asked = self.ask("recognize", self._config.deadline_ms, text=text, device_id=device_id)
        intent: asyncio.Future[Intent] = asyncio.get_running_loop().create_future()
        intent.add_done_callback(lambda done: asked.cancel() if done.cancelled() else None)
        asked.add_done_callback(lambda done: _to_intent(done, intent))
        return intent

    def ping(self) -> asyncio.Future[CloudResponse]:
        """A heartbeat; raises CloudUnavailable (unsent, busy) at once."""
        deadline_ms = max(1, round(self._config.heartbeat_interval * 1000))
        return self.ask("heartbeat", deadline_ms)

    def ask(
        self, kind: RequestKind, deadline_ms: int, *, text: str | None = None,
        device_id: str | None = None,
    ) -> asyncio.Future[CloudResponse]:
        """Send one request; the future resolves with the service's successful answer."""
        if len(self._pending) >= self._config.max_pending:
            self.counters["refused_busy"] += 1
            raise CloudUnavailable("busy", f"{len(self._pending)} requests pending")
        request = CloudRequest(
            kind=kind, gateway_id=self._gateway_id, text=text, device_id=device_id,
            deadline_ms=deadline_ms, sent_at=self._wall_clock(),
        )
        correlation = self._prefix + next(self._ids).to_bytes(8, "big")
        sent = self._channel.request(
            self._config.request_topic, request.model_dump_json(exclude_none=True).encode(),
            response_topic=self._response_topic, correlation_data=correlation,
        )
        if not sent:
            self.counters[f"{kind}_unsent"] += 1
            raise CloudUnavailable("unsent", "broker link down or not MQTT v5")
        self.counters[f"{kind}_sent"] += 1
        future: asyncio.Future[CloudResponse] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        future.add_done_callback(lambda _: self._pending.pop(correlation, None))
        return future

    def close(self) -> None:
        """Cancel every request still waiting (at shutdown)."""
        for future in list(self._pending.values()):
            future.cancel()

    def _on_response(self, correlation: bytes, payload: bytes) -> None:
        future = self._pending.get(correlation)
        if future is None:
            self.counters["responses_unmatched"] += 1  # late (deadline passed) or foreign
            return
        try:
            response = CloudResponse.model_validate_json(payload)
        except ValidationError as exc:
            self.counters["responses_malformed"] += 1
            log.warning("cloud_response_malformed", error=str(exc.errors()[0]["msg"]))
            future.set_exception(CloudUnavailable("error", "malformed response"))
            return
        self.version = response.model_version
        if not response.ok or (response.kind == "recognize" and response.intent is None):
            self.counters["responses_refused"] += 1
            future.set_exception(CloudUnavailable("error", response.error or "no intent"))
            return
        self.counters[f"{response.kind}_answered"] += 1
        future.set_result(response)


def _to_intent(asked: asyncio.Future[CloudResponse], intent: asyncio.Future[Intent]) -> None:
    if intent.done():
        return
    if asked.cancelled():
        intent.cancel()
        return
    error = asked.exception()
    if error is not None:
        intent.set_exception(error)
        return
    answer = asked.result().intent
    assert answer is not None  # checked in _on_response
    intent.set_result(answer)
