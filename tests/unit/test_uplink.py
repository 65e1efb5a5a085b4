"""SpoolingLink: spooling while the link is down, paced replay once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest
import uvloop

from gateway.delivery.uplink import SpoolingLink, spool_class
from gateway.errors import BrokerUnavailable
from gateway.spool import Spool


class FlakyLink:
    """A broker link test double whose connectivity the test switches; acks at once."""

    def __init__(self) -> None:
        self.connected = False
        self.counters: Mapping[str, int] = {}
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def run(self, ready: asyncio.Event | None = None) -> None:
        await asyncio.get_running_loop().create_future()

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *,
        properties: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None]:
        self.sent.append((topic, payload, dict(properties or {})))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        pass

    def unsubscribe(self, topic_filter: str) -> None:
        pass


async def _spool_then_replay(tmp_path: Path, rate: float, count: int) -> tuple[float, FlakyLink]:
    link = FlakyLink()
    spool = Spool(tmp_path / "spool.sqlite3", synchronous="normal")
    uplink = SpoolingLink(link, spool, gateway_id="g-1", replay_rate=rate, replay_burst=5)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.TaskGroup() as tg:
            service = tg.create_task(uplink.run())
            acks = [uplink.publish("sensors/x", f"m{n}".encode(), qos=1) for n in range(count)]
            await asyncio.gather(*[a for a in acks if a is not None])  # all on disk
            assert link.sent == []
            started = loop.time()
            link.connected = True
            while len(link.sent) < count:  # noqa: ASYNC110 - polling a test double
                await asyncio.sleep(0.005)
            elapsed = loop.time() - started
            service.cancel()
    finally:
        spool.close()
    return elapsed, link


async def test_messages_spooled_while_down_are_replayed_in_order_with_keys(
    tmp_path: Path,
) -> None:
    """Publishes made while the link is down resolve once on disk and are replayed, in order,
    each flagged as a replay with its own (gateway, seq)."""
    _, link = await _spool_then_replay(tmp_path, rate=10_000, count=50)
    assert [payload for _, payload, _ in link.sent] == [f"m{n}".encode() for n in range(50)]
    seqs = [int(props["egw-seq"]) for _, _, props in link.sent]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50
    assert all(props["egw-replay"] == "1" and props["egw-gateway"] == "g-1"
               for _, _, props in link.sent)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_replay_is_paced(tmp_path: Path, use_uvloop: bool) -> None:
    """1,000 rows at 5,000/s (under uvloop's 1 ms clock tick per row) with a burst of 5 take
    at least ~0.2 s."""
    runner = uvloop.run if use_uvloop else asyncio.run
    elapsed, link = runner(_spool_then_replay(tmp_path, rate=5_000, count=1_000))
    assert len(link.sent) == 1_000
    assert elapsed >= 0.19


def test_spool_classes_follow_the_namespace() -> None:
    """Decisions outrank actuator commands, which outrank everything else."""
    assert [spool_class(t) for t in ("decisions/p1", "actuators/l1/set", "devices/d/telemetry")] \
        == ["decision", "command", "telemetry"]


class HoldingLink(FlakyLink):
    """Connected, but never acknowledges: what a broker that just died looks like at first.
    ``refuse`` makes publish raise BrokerUnavailable (its bounded queue is full)."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = True
        self.refuse = False
        self.held: list[asyncio.Future[None]] = []

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *,
        properties: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None]:
        if self.refuse:
            raise BrokerUnavailable("queue full")
        self.sent.append((topic, payload, dict(properties or {})))
        self.held.append(asyncio.get_running_loop().create_future())
        return self.held[-1]


async def test_live_publishes_held_by_a_dropped_link_are_spooled_and_resolved(
    tmp_path: Path,
) -> None:
    """When the connection drops, publishes the link still holds are committed to the spool
    and their futures resolve then, not after the outage; the copy keeps its (gateway, seq)."""
    link = HoldingLink()
    spool = Spool(tmp_path / "spool.sqlite3", synchronous="normal")
    uplink = SpoolingLink(link, spool, gateway_id="g-1", replay_rate=1000, replay_burst=5)
    try:
        async with asyncio.TaskGroup() as tg:
            service = tg.create_task(uplink.run())
            held = [uplink.publish("sensors/x", f"m{n}".encode(), qos=1) for n in range(3)]
            await asyncio.sleep(0.1)
            assert not any(f is not None and f.done() for f in held)  # connected: waiting
            link.connected = False
            await asyncio.wait_for(asyncio.gather(*[f for f in held if f is not None]), 2.0)
            service.cancel()
        rows = spool.peek(10)
    finally:
        spool.close()
    assert [row.payload for row in rows] == [b"m0", b"m1", b"m2"]
    assert [str(row.seq) for row in rows] == [props["egw-seq"] for _, _, props in link.sent]
    assert uplink.spool_counters["rescued"] == 3


async def test_a_full_link_queue_spools_instead_of_refusing(tmp_path: Path) -> None:
    """A connected link whose queue is full (broker slower than ingest) does not refuse the
    message: it is spooled and acknowledged on commit."""
    link = HoldingLink()
    link.refuse = True
    spool = Spool(tmp_path / "spool.sqlite3", synchronous="normal")
    uplink = SpoolingLink(link, spool, gateway_id="g-1", replay_rate=1000, replay_burst=5)
    try:
        async with asyncio.TaskGroup() as tg:
            service = tg.create_task(uplink.run())
            done = uplink.publish("sensors/x", b"late", qos=1)
            assert done is not None
            await asyncio.wait_for(done, 2.0)
            service.cancel()
        assert [row.payload for row in spool.peek(10)] == [b"late"]
    finally:
        spool.close()
    assert uplink.spool_counters["spooled_link_full"] == 1


async def test_settle_spools_what_the_broker_has_not_acknowledged_at_a_stop(
    tmp_path: Path,
) -> None:
    """Before a graceful stop, publishes the broker acknowledges in time are left alone and the
    ones it does not are committed to the spool (futures resolved): nothing stays in memory."""
    link = HoldingLink()
    spool = Spool(tmp_path / "spool.sqlite3", synchronous="normal")
    uplink = SpoolingLink(link, spool, gateway_id="g-1", replay_rate=1000, replay_burst=5)
    try:
        async with asyncio.TaskGroup() as tg:
            service = tg.create_task(uplink.run())
            sent = [uplink.publish("decisions/x", f"m{n}".encode(), qos=1) for n in range(3)]
            asyncio.get_running_loop().call_later(0.02, link.held[0].set_result, None)
            await uplink.settle(0.2)
            assert all(f is not None and f.done() for f in sent)
            service.cancel()
        rows = spool.peek(10)
    finally:
        spool.close()
    assert [row.payload for row in rows] == [b"m1", b"m2"]
    assert uplink.spool_counters["spooled_on_stop"] == 2
