"""The uplink: the broker link with a durable spool in front of it for when the broker is away.

`SpoolingLink` has the `BrokerLink` interface, so the bus does not change. While the link is
connected, publishes go straight to it (the future resolves on the broker's PUBACK). While it is
not, or while its bounded queue is full (the broker is slower than ingest), every broker-bound
message is appended to the spool instead; the future resolves once the append has committed, so
a QoS 1/2 sensor message is acknowledged only when it is safe. When the link is back, a replay
loop drains the spool in priority and FIFO order at a paced rate, interleaved with live traffic,
and deletes a row only after the broker's PUBACK.

Live publishes that the link still holds when the connection drops (in flight or queued) are
spooled too, and their futures resolve on that commit: their senders are acknowledged within a
commit instead of after the outage (long enough for MQTT-SN and CoAP clients to give up and
resend). The link also re-sends its own copy after the reconnect; both carry the same
(gateway, seq) key, so the back office drops the second one like any at-least-once duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Mapping
from functools import partial
from itertools import count

import structlog

from gateway.bridge.link import BrokerLink
from gateway.errors import BrokerRefused, BrokerUnavailable
from gateway.sequence import first_seq
from gateway.spool import Row, Spool, SpoolFull, SpoolMessage, TokenBucket

log = structlog.get_logger(__name__)

_WRITE_BATCH = 256
_MAX_WRITE_BACKLOG = 65536
_REPLAY_BATCH = 64
_IDLE_POLL = 0.2
_LINK_WATCH = 0.05  # s between checks for a dropped connection with live publishes held
_MIN_PACING_SLEEP = 0.001


def spool_class(topic: str) -> str:
    """Priority class of a broker-bound topic: decisions > actuator commands > the rest."""
    if topic.startswith("decisions/"):
        return "decision"
    if topic.startswith("actuators/"):
        return "command"
    return "telemetry"


class SpoolingLink:
    """A BrokerLink that spools to disk while the wrapped link is not connected."""

    def __init__(
        self,
        link: BrokerLink,
        spool: Spool,
        *,
        gateway_id: str,
        replay_rate: float,
        replay_burst: int,
    ) -> None:
        self._link = link
        self._spool = spool
        self._gateway_id = gateway_id
        self._bucket = TokenBucket(replay_rate, replay_burst)
        self._writes: list[tuple[SpoolMessage, asyncio.Future[None]]] = []
        self._write_wanted = asyncio.Event()
        self._in_flight: set[int] = set()
        self._acked: list[int] = []
        self._seq = count(first_seq())
        self._settled = asyncio.Event()
        # held by the link, unsettled: (topic, payload, qos, retain, seq)
        self._live: dict[asyncio.Future[None], tuple[str, bytes, int, bool, int]] = {}
        self.spool_counters: Counter[str] = Counter()

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def counters(self) -> Mapping[str, int]:
        return {**self._link.counters, **{f"spool_{k}": v for k, v in self.spool_counters.items()}}

    @property
    def spool(self) -> Spool:
        """The store (read-only use: statistics for the metrics endpoint)."""
        return self._spool

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self._link.subscribe(topic_filter, qos)

    def unsubscribe(self, topic_filter: str) -> None:
        self._link.unsubscribe(topic_filter)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        properties: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None] | None:
        """Live or spooled, every message carries (gateway id, seq) as MQTT v5 user properties
        (`egw-gateway`, `egw-seq`; replayed ones also `egw-replay`), so the back office can
        drop the duplicates that at-least-once delivery allows."""
        seq = next(self._seq)
        if self._link.connected:
            try:
                sent = self._link.publish(
                    topic, payload, qos, retain, properties=self._key(seq, replay=False)
                )
            except BrokerUnavailable:
                self.spool_counters["spooled_link_full"] += 1
            else:
                if sent is not None:
                    # The SpoolMessage is made only if it has to be spooled (rarely).
                    self._live[sent] = (topic, payload, qos, retain, seq)
                    sent.add_done_callback(self._settle_live)
                return sent
        elif self._live:
            self._rescue_live()
        if len(self._writes) >= _MAX_WRITE_BACKLOG:
            self.spool_counters["refused_write_backlog"] += 1
            raise BrokerUnavailable("spool write backlog full")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        message = SpoolMessage(
            spool_class(topic), topic, payload, qos, retain, self._gateway_id, seq
        )
        self._writes.append((message, future))
        self._write_wanted.set()
        # QoS 0 has no acknowledgement to wait for, but it is spooled all the same.
        return future if qos > 0 else None

    def _settle_live(self, sent: asyncio.Future[None]) -> None:
        self._live.pop(sent, None)

    def _rescue_live(self) -> None:
        """Spool the live publishes a dropped connection left with the link (see the module
        docstring); each link future resolves once its copy is committed."""
        loop = asyncio.get_running_loop()
        for sent, (topic, payload, qos, retain, seq) in list(self._live.items()):
            if len(self._writes) >= _MAX_WRITE_BACKLOG:
                return  # the link still holds them and delivers them after the reconnect
            del self._live[sent]
            if sent.done():
                continue
            message = SpoolMessage(
                spool_class(topic), topic, payload, qos, retain, self._gateway_id, seq
            )
            committed: asyncio.Future[None] = loop.create_future()
            committed.add_done_callback(partial(self._rescued, sent))
            self._writes.append((message, committed))
        self._write_wanted.set()

    def _rescued(self, sent: asyncio.Future[None], committed: asyncio.Future[None]) -> None:
        if committed.cancelled() or committed.exception() is not None:
            return  # not spooled (full): the link's own copy is still on its way
        self.spool_counters["rescued"] += 1
        if not sent.done():
            sent.set_result(None)

    async def settle(self, wait_s: float) -> None:
        """Before a graceful stop (while `run` still runs): wait up to `wait_s` for the broker
        to acknowledge what the link holds; commit what is still unacknowledged to the spool,
        to be replayed after the restart (a late PUBACK makes that copy a duplicate with the
        same key); then wait, up to `wait_s` again, for pending spool commits."""
        held = [sent for sent in self._live if not sent.done()]
        if held:
            await asyncio.wait(held, timeout=wait_s)
        if self._live:
            self.spool_counters["spooled_on_stop"] += len(self._live)
            self._rescue_live()
        committing = [future for _, future in self._writes]
        if committing:
            await asyncio.wait(committing, timeout=wait_s)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._link.run(ready), name="broker-link")
            tg.create_task(self._write_loop(), name="spool-writer")
            tg.create_task(self._replay_loop(), name="spool-replay")
            tg.create_task(self._watch_link(), name="spool-link-watch")

    async def _watch_link(self) -> None:
        """Notice a dropped connection even when no new publish comes to notice it."""
        while True:
            await asyncio.sleep(_LINK_WATCH)
            if self._live and not self._link.connected:
                self._rescue_live()

    async def _write_loop(self) -> None:
        """Group commit: every append waiting now goes into one transaction (one fsync)."""
        try:
            while True:
                await self._write_wanted.wait()
                self._write_wanted.clear()
                while self._writes:
                    batch, self._writes = self._writes[:_WRITE_BATCH], self._writes[_WRITE_BATCH:]
                    results = await asyncio.to_thread(
                        self._spool.append_many, [message for message, _ in batch], time.time()
                    )
                    for (_, future), result in zip(batch, results, strict=True):
                        if isinstance(result, SpoolFull):
                            self.spool_counters[f"refused_{result.reason}"] += 1
                            if not future.done():
                                future.set_exception(BrokerUnavailable(f"spool: {result.reason}"))
                        else:
                            self.spool_counters["appended"] += 1
                            if not future.done():
                                future.set_result(None)
        finally:
            for _, future in self._writes:
                future.cancel()

    async def _replay_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._link.connected:
                await asyncio.sleep(_IDLE_POLL)
                continue
            rows = await asyncio.to_thread(
                self._spool.peek, _REPLAY_BATCH, tuple(self._in_flight), time.time()
            )
            if not rows:
                await asyncio.sleep(_IDLE_POLL)
                continue
            for row in rows:
                # uvloop's clock moves in whole milliseconds: wait at least one, or the bucket
                # sees no time pass and the replay would run unpaced.
                while not self._bucket.take(loop.time()):  # noqa: ASYNC110 - pacing, not waiting
                    await asyncio.sleep(max(self._bucket.delay(loop.time()), _MIN_PACING_SLEEP))
                if not self._replay(row):
                    break
            if self._in_flight:
                self._settled.clear()
                # A lost connection leaves futures pending until the link resends: poll too.
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
                # arrives as the event is set, and the loop would outlive its TaskGroup.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await self._settled.wait()
            acked, self._acked = self._acked, []
            if acked:
                await asyncio.to_thread(self._delete, acked)

    def _replay(self, row: Row) -> bool:
        """Send one spooled row; False when the link cannot take it now."""
        try:
            done = self._link.publish(
                row.topic, row.payload, max(row.qos, 1), row.retain,
                properties=self._key(row.seq, replay=True),
            )
        except BrokerUnavailable:
            return False
        self._in_flight.add(row.id)
        self.spool_counters["replayed"] += 1
        assert done is not None
        done.add_done_callback(lambda fut: self._replayed(row.id, fut))
        return True

    def _key(self, seq: int, *, replay: bool) -> dict[str, str]:
        key = {"egw-gateway": self._gateway_id, "egw-seq": str(seq)}
        if replay:
            key["egw-replay"] = "1"
        return key

    def _replayed(self, row_id: int, done: asyncio.Future[None]) -> None:
        self._in_flight.discard(row_id)
        failure = None if done.cancelled() else done.exception()
        if not done.cancelled() and failure is None:
            self._acked.append(row_id)  # deleted in the next batch; until then still stored
        elif isinstance(failure, BrokerRefused):
            # The broker will not take it as it is; kept, it would come back at the head of
            # every replay batch and hold the rest of the backlog behind it.
            self.spool_counters["refused_by_broker"] += 1
            self._acked.append(row_id)
        if not self._in_flight:
            self._settled.set()

    def _delete(self, ids: list[int]) -> None:
        try:
            self._spool.delete(ids)
        except SpoolFull:
            self.spool_counters["delete_failed"] += 1
