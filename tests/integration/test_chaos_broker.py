"""Chaos: the broker is SIGKILLed under sustained QoS 1 load and restarted on the same port.

Separate processes: a private mosquitto (persistence on, so the subscriber's session survives
the kill), ``python -m gateway run`` and a paho MQTT v5 subscriber in this process that
de-duplicates by the ``egw-gateway`` / ``egw-seq`` user properties. The load comes from real
UDP sockets in this process. Every message the gateway acknowledged must arrive exactly once.

mosquitto forwards a message to its subscribers before it PUBACKs it, so whatever the gateway
saw acknowledged had already been written to the subscriber's socket when the broker died
(see ``DedupSubscriber`` for why the subscriber must not write to the broker itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.integration.chaos import (
    GATEWAY_ID,
    DedupSubscriber,
    GatewayProcess,
    Load,
    RestartableBroker,
    assert_exactly_once,
    coap_load,
    mqttsn_load,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CLIENTS = 16
RATE = 200.0  # msg/s, all clients together
BEFORE_KILL = 2.5  # s of load with the broker up
OUTAGE = 3.0  # s the broker is dead
AFTER_RESTART = 2.5  # s of load after the gateway reconnected
DELIVERY_WAIT = 15.0
# Acknowledged while the broker was dead, so through the spool; the rate then depends on fsync
# latency (one commit per batch, one message in flight per client), which is slow on a busy VM.
MIN_ACKED_IN_OUTAGE = 50

Frontend = Callable[[Load, GatewayProcess], Awaitable[None]]


async def _mqttsn(load: Load, gateway: GatewayProcess) -> None:
    await mqttsn_load(load, gateway.mqttsn_port)


async def _coap(load: Load, gateway: GatewayProcess) -> None:
    await coap_load(load, gateway.coap_port)


async def _broker_saved(broker: RestartableBroker, since: float) -> None:
    """The subscriber's session must be in the persistence file before the kill."""
    deadline = time.monotonic() + 5.0
    while not broker.saved_since(since):
        assert time.monotonic() < deadline, "mosquitto never saved its persistence file"
        await asyncio.sleep(0.1)


async def _kill_and_restart(frontend: Frontend, tmp_path: Path) -> None:
    broker = RestartableBroker(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    try:
        with DedupSubscriber(broker.port) as subscriber:
            await _broker_saved(broker, subscriber.subscribed_at)
            gateway = GatewayProcess(tmp_path / "data", broker.url)
            await asyncio.to_thread(gateway.start)
            try:
                await gateway.wait_for("broker_connected")
                load = Load(clients=CLIENTS, rate=RATE)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(frontend(load, gateway))
                    await asyncio.sleep(BEFORE_KILL)
                    t_kill = time.monotonic()
                    broker.kill()
                    await gateway.wait_for("broker_connection_lost")
                    await asyncio.sleep(OUTAGE)
                    t_restart = time.monotonic()
                    await asyncio.to_thread(broker.start)
                    await gateway.wait_for("broker_connected", 2)
                    await asyncio.sleep(AFTER_RESTART)
                    load.stop.set()
                missing = await subscriber.wait_for(set(load.log.acked), DELIVERY_WAIT)
                await asyncio.sleep(0.5)  # late duplicates, if any, would land now
                delivered, stats = subscriber.snapshot()
            finally:
                assert gateway.stop() == 0, gateway.log_tail()
    finally:
        broker.stop()
    log = load.log
    timing = {n: (round(log.sent[n] - t_kill, 3), round(log.acked[n] - t_kill, 3))
              for n in sorted(missing)[:10]}
    context = (f"{log.summary()}; subscriber {dict(stats)}; missing (sent, acked) s after the "
               f"kill: {timing}")
    assert not log.unanswered, context
    assert len(log.acked) >= RATE * (BEFORE_KILL + OUTAGE) * 0.5, context
    # The spool carried the outage: messages sent while the broker was dead were acknowledged,
    # and arrived marked as replayed.
    assert log.acked_between(t_kill, t_restart) >= MIN_ACKED_IN_OUTAGE, context
    assert stats["replayed"] >= MIN_ACKED_IN_OUTAGE, context
    assert stats["no_key"] == 0, context
    assert stats[f"gateway_{GATEWAY_ID}"] == sum(delivered.values()), context
    assert_exactly_once(log, delivered)


async def test_broker_sigkill_under_mqttsn_qos1_load(tmp_path: Path) -> None:
    """Broker SIGKILLed and restarted under MQTT-SN QoS 1 load: every PUBACKed message reaches
    the subscriber exactly once after de-duplication by (egw-gateway, egw-seq)."""
    await _kill_and_restart(_mqttsn, tmp_path)


async def test_broker_sigkill_under_coap_con_load(tmp_path: Path) -> None:
    """Broker SIGKILLed and restarted under CoAP CON load: every POST answered 2.04 reaches the
    subscriber exactly once after de-duplication by (egw-gateway, egw-seq)."""
    await _kill_and_restart(_coap, tmp_path)
