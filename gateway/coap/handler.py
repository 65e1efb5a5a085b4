"""One device request -> normalise -> pipeline.ingest -> the CoAP answer. Shared by both paths.

The fast path (our own codec) and the general path (the aiocoap resource, which sees block-wise
and other less common requests to the same URIs) both call :meth:`DeviceIngest.handle`, so a
request gets the same answer whichever path took it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import cbor2
import structlog

from gateway.coap.bucket import LogThrottle
from gateway.coap.fastpath import Kind
from gateway.coap.message import (
    BAD_REQUEST,
    CHANGED,
    CONTENT_FORMAT,
    INTERNAL_SERVER_ERROR,
    MAX_AGE,
    REQUEST_ENTITY_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    SIZE1,
    UNSUPPORTED_CONTENT_FORMAT,
    Option,
    encode_uint,
)
from gateway.errors import Overloaded
from gateway.pipeline.normalise import (
    CF_CBOR,
    PayloadError,
    normalise_command,
    normalise_telemetry,
)
from schemas.decisions import CoapSummary
from schemas.telemetry import TelemetryBatch, TextCommand

if TYPE_CHECKING:
    from gateway.pipeline.ingest import IngestPipeline

__all__ = ["DeviceIngest", "Later", "Outcome"]

log = structlog.get_logger(__name__)

_PAYLOAD_ERROR_CODES: Final = {
    "bad_request": BAD_REQUEST,
    "unsupported_content_format": UNSUPPORTED_CONTENT_FORMAT,
    "too_large": REQUEST_ENTITY_TOO_LARGE,
}
MAX_AGE_LIMIT: Final = 0xFFFFFFFF  # Max-Age is a 4-byte uint (RFC 7252 §5.10.5)
NOT_STORED_RETRY_AFTER: Final = 5
"""Max-Age of the 5.03 sent when an item could be neither delivered nor spooled."""
SEEN_DEVICES: Final = 128
"""Device ids remembered (first seen first out) for /.well-known/core."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A CoAP response as code, payload and the few options an ingest answer can carry."""

    code: int
    payload: bytes = b""
    content_format: int | None = None
    max_age: int | None = None
    size1: int | None = None

    def options(self) -> list[Option]:
        options: list[Option] = []
        if self.content_format is not None:
            options.append((CONTENT_FORMAT, encode_uint(self.content_format)))
        if self.max_age is not None:
            options.append((MAX_AGE, encode_uint(self.max_age)))
        if self.size1 is not None:
            options.append((SIZE1, encode_uint(self.size1)))
        return options


@dataclass(frozen=True, slots=True)
class Later:
    """An answer that comes later, and the safety wait that holds it (None: not waiting).

    Until `safe` is done the request must not be acknowledged at all, not even by an empty ACK.
    """

    outcome: asyncio.Future[Outcome]
    safe: asyncio.Future[None] | None


def _changed(summary: CoapSummary) -> Outcome:
    """2.04 with the summary as CBOR."""
    body = cbor2.dumps(summary.model_dump(mode="json", exclude_none=True))
    return Outcome(CHANGED, body, CF_CBOR)


def _failed(future: asyncio.Future[None]) -> bool:
    return future.cancelled() or future.exception() is not None


class DeviceIngest:
    """Turns one telemetry or command body into an Outcome (now or later); never raises."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        max_payload: int,
        counters: Counter[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline = pipeline
        self._max_payload = max_payload
        self._counters = counters
        self._clock = clock
        self._throttle = LogThrottle()
        self.seen_devices: dict[str, None] = {}
        # The answer to most telemetry depends only on the count accepted (<= MAX_READINGS).
        self._plain_accepted: dict[int, Outcome] = {}

    def too_large(self, size: int | None = None) -> Outcome:
        """4.13 with Size1 = the limit (RFC 7959 §2.9.3, §4)."""
        self._counters["ingest_too_large"] += 1
        diagnostic = f"payload larger than {self._max_payload} bytes"
        if size is not None:
            diagnostic = f"payload of {size} bytes is larger than {self._max_payload} bytes"
        return Outcome(
            REQUEST_ENTITY_TOO_LARGE, diagnostic.encode(), size1=self._max_payload
        )

    def handle(
        self, kind: Kind, device_id: str, payload: bytes, content_format: int | None
    ) -> Outcome | Later:
        """The answer now, or `Later` when it must wait: for a text command being recognised
        or for the normalised item to be delivered to the broker or committed to the spool (a
        request is acknowledged only once what it carried is safe)."""
        if len(payload) > self._max_payload:
            return self.too_large(len(payload))
        counters = self._counters
        now = self._clock()
        try:
            if kind == "telemetry":
                item: TelemetryBatch | TextCommand = normalise_telemetry(
                    device_id, payload, content_format,
                    source="coap", now=now, max_payload=self._max_payload,
                )
            else:
                item = normalise_command(
                    device_id, payload, content_format,
                    source="coap", now=now, max_payload=self._max_payload,
                )
        except PayloadError as exc:
            counters[f"ingest_{exc.kind}"] += 1
            if exc.kind == "too_large":
                return Outcome(
                    REQUEST_ENTITY_TOO_LARGE, exc.diagnostic.encode(), size1=self._max_payload
                )
            return Outcome(_PAYLOAD_ERROR_CODES[exc.kind], exc.diagnostic.encode())
        except Exception:  # a bug in the normaliser must not take the server down
            return self._internal_error("normalise_failed", device_id, now)
        try:
            result, safe = self._pipeline.ingest_tracked(item)
        except Overloaded as overloaded:  # not `exc`: mypyc types a name once per function
            return self._overloaded(overloaded)
        except Exception:
            return self._internal_error("ingest_failed", device_id, now)
        if safe is not None and safe.done():
            if _failed(safe):
                return self._not_stored()
            safe = None
        if safe is None and not isinstance(result, asyncio.Future):
            return self._accepted(result, device_id, now)
        # The answer waits for a text command being recognised off the event loop and/or for
        # the normalised item to be safe upstream (broker PUBACK or spool commit).
        counters["ingest_deferred"] += 1
        waits: list[asyncio.Future[Any]] = [
            waited for waited in (result, safe) if isinstance(waited, asyncio.Future)
        ]
        outcome: asyncio.Future[Outcome] = waits[0].get_loop().create_future()
        settle = partial(self._settle, device_id, now, outcome, result, safe)
        for waited in waits:
            waited.add_done_callback(settle)
        return Later(outcome, safe)

    def _settle(
        self,
        device_id: str,
        now: float,
        outcome: asyncio.Future[Outcome],
        result: CoapSummary | asyncio.Future[CoapSummary],
        safe: asyncio.Future[None] | None,
        _done: object = None,
    ) -> None:
        """Resolve `outcome` once the summary and the safety wait (if any) are both done."""
        if outcome.done():
            return
        if safe is not None:
            if not safe.done():
                return
            if _failed(safe):
                outcome.set_result(self._not_stored())
                return
        if not isinstance(result, asyncio.Future):
            outcome.set_result(self._accepted(result, device_id, now))
            return
        if not result.done():
            return
        if result.cancelled():
            outcome.set_result(self._internal_error("ingest_cancelled", device_id, now))
            return
        exc = result.exception()
        if exc is None:
            outcome.set_result(self._accepted(result.result(), device_id, now))
        elif isinstance(exc, Overloaded):
            outcome.set_result(self._overloaded(exc))
        else:
            outcome.set_result(self._internal_error("ingest_failed", device_id, now, exc))

    def _not_stored(self) -> Outcome:
        """The item was neither delivered nor spooled: the sensor must send it again."""
        self._counters["ingest_not_stored"] += 1
        return Outcome(SERVICE_UNAVAILABLE, b"not stored", max_age=NOT_STORED_RETRY_AFTER)

    def _overloaded(self, exc: Overloaded) -> Outcome:
        self._counters["ingest_overloaded"] += 1
        max_age = min(max(0, int(exc.retry_after)), MAX_AGE_LIMIT)
        return Outcome(SERVICE_UNAVAILABLE, b"overloaded", max_age=max_age)

    def _accepted(self, summary: CoapSummary, device_id: str, now: float) -> Outcome:
        if summary.intent is None and not summary.actions:
            outcome = self._plain_accepted.get(summary.accepted)
            if outcome is None:
                outcome = self._plain_accepted[summary.accepted] = _changed(summary)
        else:
            try:
                outcome = _changed(summary)
            except Exception:
                return self._internal_error("summary_failed", device_id, now)
        self._counters["ingest_ok"] += 1
        seen = self.seen_devices
        if device_id not in seen:
            seen[device_id] = None
            if len(seen) > SEEN_DEVICES:
                del seen[next(iter(seen))]
        return outcome

    def _internal_error(
        self, event: str, device_id: str, now: float, exc: BaseException | None = None
    ) -> Outcome:
        """5.00 for a bug below us (called inside `except`, or with the exception)."""
        self._counters[f"ingest_{event}"] += 1
        suppressed = self._throttle.allow(event, now)
        if suppressed is not None:
            log.error(event, device_id=device_id, suppressed=suppressed,
                      exc_info=exc if exc is not None else True)
        return Outcome(INTERNAL_SERVER_ERROR)
