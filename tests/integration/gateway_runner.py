"""Run a real Gateway (UDP sockets, real broker link) inside a test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gateway.app import Gateway
from gateway.config import Settings


def gateway_settings(
    data_dir: Path, broker_url: str = "", *, spool: dict[str, Any] | None = None, **mqttsn: Any
) -> Settings:
    """Loopback, an ephemeral UDP port unless given, short timers suited to tests."""
    mqttsn.setdefault("host", "127.0.0.1")
    mqttsn.setdefault("port", 0)
    mqttsn.setdefault("session_flush_interval", 0.05)
    return Settings(
        data_dir=data_dir,
        mqttsn=mqttsn,
        coap={"host": "127.0.0.1", "port": 0},
        http={"host": "127.0.0.1", "port": 0},
        spool=spool or {},
        broker={"url": broker_url, "reconnect_min": 0.1, "reconnect_max": 0.5},
    )


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """Start the gateway, wait until it is ready, and stop it (bounded) when the block ends."""
    gateway = Gateway(settings)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(gateway.run())
        ready = asyncio.ensure_future(gateway.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            gateway.stop()
            raise AssertionError("gateway did not become ready")
        try:
            yield gateway
        finally:
            gateway.stop()
            await asyncio.wait_for(asyncio.shield(task), timeout=10)


def address(gateway: Gateway) -> tuple[str, int]:
    assert gateway.mqttsn_address is not None
    return gateway.mqttsn_address[0], gateway.mqttsn_address[1]


async def broker_connected(gateway: Gateway, within: float = 5.0) -> None:
    """Wait until the gateway's broker link is up (it connects after the gateway is ready)."""
    await _until(lambda: gateway.bus is not None and gateway.bus.link.connected, within)


async def broker_disconnected(gateway: Gateway, within: float = 5.0) -> None:
    """Wait until the gateway's broker link has noticed that the broker is gone."""
    await _until(lambda: gateway.bus is not None and not gateway.bus.link.connected, within)


async def broker_subscribed(gateway: Gateway, count: int = 1, within: float = 5.0) -> None:
    """Wait until the broker has acknowledged `count` of the gateway's SUBSCRIBE/UNSUBSCRIBEs."""
    await _until(
        lambda: gateway.bus is not None
        and gateway.bus.link.counters["subscribe_acks"] >= count,
        within,
    )


async def _until(condition: Callable[[], bool], within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
