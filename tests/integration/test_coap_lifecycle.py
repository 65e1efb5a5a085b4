"""run_coap_server's lifecycle: ready, clean cancellation, and refusing a port already served."""

from __future__ import annotations

import asyncio
import gc
import os
import socket

import aiocoap
import cbor2
import pytest
from aiocoap import Code

from gateway.bridge.null_link import NullLink
from gateway.coap.server import CoapPortInUse, CoapServer, run_coap_server
from gateway.delivery.bus import MessageBus
from tests.helpers import free_udp_port
from tests.integration.test_coap_support import (
    LOCALHOST,
    BusPipeline,
    aiocoap_client,
    coap_server,
    coap_settings,
    request,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def bus_for(settings: object) -> MessageBus:
    bus = MessageBus()
    bus.link = NullLink(settings, bus.on_broker_message)  # type: ignore[arg-type]
    return bus


async def test_run_serves_until_cancelled_and_leaves_nothing_behind() -> None:
    """ready is set once it serves; after cancellation the port, fds and tasks are released."""
    port = free_udp_port()
    settings = coap_settings(port=port)
    bus = bus_for(settings)
    tasks_before = asyncio.all_tasks()
    fds_before = open_fds()
    ready = asyncio.Event()
    started: list[CoapServer] = []
    task = asyncio.create_task(
        run_coap_server(settings, bus, BusPipeline(bus), ready, on_started=started.append)
    )
    await asyncio.wait_for(ready.wait(), 5)
    assert started[0].address == (LOCALHOST, port)
    async with aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=f"coap://{LOCALHOST}:{port}/devices/d1/telemetry",
            payload=cbor2.dumps([{0: "t", 2: 1.0}]), content_format=112,
        )
        assert response.code == Code.CHANGED
        observation = client.request(aiocoap.Message(
            code=Code.GET, uri=f"coap://{LOCALHOST}:{port}/actuators/a1/set", observe=0))
        await asyncio.wait_for(observation.response, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        observation.observation.cancel()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() <= tasks_before | {asyncio.current_task()}
    assert open_fds() <= fds_before
    assert bus.link.counters["unsubscribes"] == bus.link.counters["subscribes"] == 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOCALHOST, port))


async def test_a_second_server_on_the_same_port_refuses_to_start() -> None:
    """Our socket has no SO_REUSEPORT, so a second server fails loudly, naming the port."""
    async with coap_server() as srv:
        settings = coap_settings(port=srv.port)
        bus = bus_for(settings)
        ready = asyncio.Event()
        with pytest.raises(CoapPortInUse, match=str(srv.port)):
            await run_coap_server(settings, bus, BusPipeline(bus), ready)
        assert not ready.is_set()


async def test_port_held_with_so_reuseport_is_refused_too() -> None:
    """A port already bound with SO_REUSEPORT (as aiocoap binds) is not silently shared."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind((LOCALHOST, 0))
        port = other.getsockname()[1]
        settings = coap_settings(port=port)
        bus = bus_for(settings)
        with pytest.raises(CoapPortInUse, match=f"CoAP port {port}"):
            await run_coap_server(settings, bus, BusPipeline(bus))


# aiocoap does not close its socket when its bind fails; that leak is not ours to report.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_aiocoap_server_cannot_join_our_port() -> None:
    """The other way round: an aiocoap server (SO_REUSEPORT) cannot bind our port either."""
    async with coap_server() as srv:
        with pytest.raises(OSError):
            context = await aiocoap.Context.create_server_context(
                None, bind=(LOCALHOST, srv.port), transports=["udp6"]
            )
            await context.shutdown()
        gc.collect()  # the leaked socket's warning is raised (and ignored) here


async def test_close_ends_observations_and_their_subscriptions() -> None:
    """Closing the server cancels every observation task and unsubscribes it from the bus."""
    async with aiocoap_client() as client:
        async with coap_server() as srv:
            for actuator in ("a1", "a2"):
                req = client.request(aiocoap.Message(
                    code=Code.GET, uri=f"{srv.base}/actuators/{actuator}/set", observe=0))
                await asyncio.wait_for(req.response, 5)
            await until(lambda: srv.server.observers == 2)
            link = srv.bus.link
        assert srv.server.observers == 0
        assert link.counters["unsubscribes"] == 2
