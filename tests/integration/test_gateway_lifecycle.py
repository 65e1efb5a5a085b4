"""The gateway process starts, serves and stops cleanly, and keeps sessions across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.mqttsn.codec import decode
from gateway.mqttsn.constants import QoS
from gateway.mqttsn.packets import (
    Advertise,
    GwInfo,
    PingReq,
    PingResp,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SearchGw,
)
from tests.integration.gateway_runner import (
    address,
    broker_connected,
    gateway_settings,
    running_gateway,
)
from tests.integration.mqttsn_client import UdpMqttSnClient

pytestmark = pytest.mark.integration


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("with_broker", [False, True])
async def test_stop_leaves_no_task_or_socket_behind(
    tmp_path: Path, request: pytest.FixtureRequest, with_broker: bool
) -> None:
    """After stop, run() has returned, no task is left, no fd is open and the port is free."""
    url = request.getfixturevalue("mosquitto").url if with_broker else ""
    fds_before = open_fds()
    tasks_before = asyncio.all_tasks()
    async with running_gateway(gateway_settings(tmp_path, url)) as gateway:
        if with_broker:
            await broker_connected(gateway)
        host, port = address(gateway)
        async with UdpMqttSnClient((host, port)) as client:
            await client.connect("lifecycle")
            client.send(PingReq())
            await client.expect(PingResp)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == tasks_before
    assert open_fds() <= fds_before
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, port))


async def test_searchgw_is_answered_on_the_unicast_port(tmp_path: Path) -> None:
    """SEARCHGW over UDP gets GWINFO carrying the configured gateway id."""
    settings = gateway_settings(tmp_path, gateway_id=42)
    async with running_gateway(settings) as gateway, UdpMqttSnClient(address(gateway)) as client:
        client.send(SearchGw(1))
        assert await client.expect(GwInfo) == GwInfo(42)


async def test_local_routing_without_a_broker(tmp_path: Path) -> None:
    """With no broker configured, an MQTT-SN publisher reaches an MQTT-SN subscriber once."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        UdpMqttSnClient(address(gateway)) as sub,
        UdpMqttSnClient(address(gateway)) as pub,
    ):
        await sub.connect("actuator")
        await sub.subscribe("actuators/+/set", qos=1)
        await pub.connect("panel")
        topic_id = await pub.register("actuators/light.kitchen/set")
        await pub.publish(topic_id, b'{"state":"off"}', qos=1)
        assert await sub.next_message() == ("actuators/light.kitchen/set", b'{"state":"off"}')
        await sub.nothing()


async def test_garbage_does_not_disturb_a_connected_client(tmp_path: Path) -> None:
    """A burst of malformed datagrams is counted and a connected client is still served."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        UdpMqttSnClient(address(gateway)) as client,
        UdpMqttSnClient(address(gateway)) as attacker,
    ):
        await client.connect("steady")
        for n in range(200):
            attacker.send(bytes([n % 256, 0x0C]) + os.urandom(n % 40))
        client.send(PingReq())
        await client.expect(PingResp)
        assert gateway.core is not None
        counters = gateway.core.counters
        malformed = sum(v for k, v in counters.items() if k.startswith("drop_malformed"))
        assert malformed + counters["drop_unknown_client"] >= 190


async def test_sessions_survive_a_gateway_restart(tmp_path: Path) -> None:
    """A persistent client's topic ids and subscriptions work after the gateway restarts."""
    settings = gateway_settings(tmp_path)
    async with running_gateway(settings) as gateway:
        port = address(gateway)[1]
        async with UdpMqttSnClient(address(gateway)) as client:
            await client.connect("persistent", clean=False)
            topic_id = await client.register("devices/persistent/telemetry")
            await client.subscribe("actuators/persistent/set", qos=1)
            await asyncio.sleep(0.2)  # let the session flusher write
    restarted = gateway_settings(tmp_path, port=port)
    async with (
        running_gateway(restarted) as gateway,
        UdpMqttSnClient(address(gateway)) as other,
        UdpMqttSnClient(address(gateway)) as client,
    ):
        await other.connect("panel2")
        cmd = await other.register("actuators/persistent/set")
        assert gateway.core is not None
        session = gateway.core.session("persistent")
        assert session is not None and session.subscriptions == {"actuators/persistent/set": 1}
        assert session.registry.name(topic_id) == "devices/persistent/telemetry"
        # The client comes back from a new UDP port and keeps its session.
        await client.connect("persistent", clean=False)
        await other.publish(cmd, b"on", qos=1)
        assert (await client.next_message())[1] == b"on"
        client.send(Publish(topic_id, 0, b"21.0"))
        client.send(PingReq())
        await client.expect(PingResp)
        assert gateway.core.counters["publish_invalid_topic_id"] == 0


def stored_session(data_dir: Path, client_id: str) -> dict[str, Any]:
    """The session record on disk right now (another connection: only committed data)."""
    with sqlite3.connect(data_dir / "mqttsn-sessions.sqlite3") as db:
        row = db.execute("SELECT record FROM sessions WHERE client_id = ?", (client_id,)).fetchone()
    assert row is not None, f"no stored session for {client_id}"
    record: dict[str, Any] = json.loads(row[0])
    return record


async def test_qos2_pubrec_follows_the_stored_session_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    """PUBREC comes only once the session that remembers the message id is on disk (with a
    30 s flush interval, so not the periodic flush), and a gateway restarted from that disk
    answers the sensor's retransmission with PUBREC without forwarding the message again."""
    topic = "sensors/qos2/raw"
    async with running_gateway(gateway_settings(tmp_path, session_flush_interval=30.0)) as gateway:
        port = address(gateway)[1]
        async with UdpMqttSnClient(address(gateway)) as sensor:
            await sensor.connect("qos2-sensor", clean=False)
            topic_id = await sensor.register(topic)
            sensor.send(Publish(topic_id, 77, b"once", QoS.EXACTLY_ONCE))
            assert (await sensor.expect(PubRec, timeout=5)).msg_id == 77
            assert 77 in stored_session(tmp_path, "qos2-sensor")["qos2_received"]
    # The PUBREL never went out: after the restart the sensor sends the PUBLISH again.
    async with (
        running_gateway(gateway_settings(tmp_path, port=port)) as gateway,
        UdpMqttSnClient(address(gateway)) as listener,
        UdpMqttSnClient(address(gateway)) as sensor,
    ):
        await listener.connect("listener")
        await listener.subscribe(topic, qos=1)
        await sensor.connect("qos2-sensor", clean=False)
        sensor.send(Publish(topic_id, 77, b"once", QoS.EXACTLY_ONCE, dup=True))
        assert (await sensor.expect(PubRec)).msg_id == 77
        await listener.nothing(0.5)
        sensor.send(PubRel(77))
        assert (await sensor.expect(PubComp)).msg_id == 77
        await sensor.publish(topic_id, b"next", qos=2)  # a new message is forwarded
        assert await listener.next_message() == (topic, b"next")


async def test_advertise_is_sent_periodically(tmp_path: Path) -> None:
    """With an advertise interval the gateway sends ADVERTISE(gw id, interval) each interval."""
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Listener(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            received.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        settings = gateway_settings(
            tmp_path, gateway_id=5, advertise_interval=1, advertise_address="127.0.0.1",
            advertise_port=port,
        )
        async with running_gateway(settings):
            first = decode(await asyncio.wait_for(received.get(), 3))
            second = decode(await asyncio.wait_for(received.get(), 3))
    finally:
        transport.close()
    assert first == second == Advertise(5, 1)
