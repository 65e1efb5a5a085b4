"""Chaos: the gateway is SIGKILLed while the broker is away and its spool is nearly full.

``python -m gateway run`` starts with a broker URL where nothing listens, so every QoS 1
message goes to the spool and is PUBACKed after the commit. With thousands spooled (the spool
bounded so that they fill most of it) the gateway is SIGKILLed in the middle of the load. Then
the broker comes up, a de-duplicating subscriber connects, and the gateway restarts on the same
data directory: every message it had acknowledged arrives, exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from gateway.pipeline.normalise import normalise_telemetry
from gateway.spool import row_size
from tests.integration.chaos import (
    GATEWAY_ID,
    DedupSubscriber,
    GatewayProcess,
    Load,
    RestartableBroker,
    assert_exactly_once,
    mqttsn_load,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CLIENTS = 8
SPOOLED = 3000  # acknowledged messages in the spool at the kill (at least)
FILL = 0.85  # share of EGW_SPOOL__MAX_BYTES they take
REPLAY_RATE = 2000  # msg/s, EGW_SPOOL__REPLAY_RATE: keeps the test short
DELIVERY_WAIT = 15.0


def _spool_bound() -> int:
    """EGW_SPOOL__MAX_BYTES such that SPOOLED messages fill about FILL of it."""
    batch = normalise_telemetry(
        "chaos-sn0", json.dumps({"seq": 99_999}).encode(), None, source="mqttsn", now=time.time()
    )
    per_row = row_size("devices/chaos-sn0/telemetry", batch.model_dump_json().encode())
    return int(SPOOLED * per_row / FILL)


async def test_gateway_sigkill_with_a_full_spool_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    """SIGKILL while offline with thousands spooled, restart with the broker back: every
    PUBACKed message is delivered exactly once after de-duplication."""
    broker = RestartableBroker(tmp_path / "broker")  # not started yet: the gateway is offline
    gateway = GatewayProcess(
        tmp_path / "data", broker.url,
        EGW_SPOOL__MAX_BYTES=str(_spool_bound()),
        EGW_SPOOL__REPLAY_RATE=str(REPLAY_RATE),
    )
    await asyncio.to_thread(gateway.start)
    load = Load(clients=CLIENTS, rate=10_000.0)  # as fast as one message in flight allows
    try:
        async with asyncio.TaskGroup() as tg:
            clients = tg.create_task(mqttsn_load(load, gateway.mqttsn_port))
            deadline = time.monotonic() + 20.0
            while len(load.log.acked) < SPOOLED:
                assert time.monotonic() < deadline, load.log.summary()
                await asyncio.sleep(0.01)
            gateway.kill()  # mid-load: some publishes are still being written
            load.stop.set()
            clients.cancel()  # what was in flight at the kill stays unanswered
    finally:
        gateway.kill()
    assert not load.log.rejected, load.log.summary()
    assert gateway.count("broker_connected") == 0, "the gateway was not offline"

    await asyncio.to_thread(broker.start)
    try:
        with DedupSubscriber(broker.port) as subscriber:
            await asyncio.to_thread(gateway.start)
            try:
                missing = await subscriber.wait_for(set(load.log.acked), DELIVERY_WAIT)
                await asyncio.sleep(0.5)  # late duplicates, if any, would land now
                delivered, stats = subscriber.snapshot()
            finally:
                assert gateway.stop() == 0, gateway.log_tail()
    finally:
        broker.stop()
    context = f"{load.log.summary()}; subscriber {dict(stats)}; missing {sorted(missing)[:10]}"
    assert gateway.count("spool_database_quarantined") == 0, gateway.log_tail()
    assert stats["replayed"] == stats["received"], context  # all of it came from the spool
    assert stats[f"gateway_{GATEWAY_ID}"] == sum(delivered.values()), context
    # Messages in flight at the kill may or may not have been committed: either is fine.
    assert_exactly_once(load.log, delivered, allow_unacked=True)
