"""The bridge link against a real mosquitto, observed by an independent paho client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.bridge import BrokerLink, InboundMessage, create_link
from gateway.bridge.gmqtt_link import GmqttLink
from gateway.bridge.null_link import NullLink
from gateway.config import Settings
from gateway.errors import BrokerUnavailable
from tests.helpers import MosquittoProcess, MqttRecorder, TcpProxy, free_tcp_port

pytestmark = pytest.mark.integration

MP = "edge/site1/"
STATUS = MP + "gateway/status"
Recorders = Callable[..., MqttRecorder]


def make_settings(url: str, **broker: Any) -> Settings:
    broker = {"url": url, "reconnect_min": 0.05, "reconnect_max": 0.3, "keepalive": 5} | broker
    return Settings(site="site1", broker=broker)


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 -- polls link state and paho threads
            await asyncio.sleep(0.01)


async def acked(future: asyncio.Future[None] | None, within: float = 5.0) -> None:
    assert future is not None
    await asyncio.wait_for(future, within)


async def barrier(link: BrokerLink) -> None:
    """The broker handled everything sent before: it acknowledged a later QoS 1 publish."""
    await acked(link.publish("barrier", b"", qos=1))


@contextlib.asynccontextmanager
async def running(link: BrokerLink, connected: bool = True) -> AsyncIterator[asyncio.Task[None]]:
    ready = asyncio.Event()
    task = asyncio.create_task(link.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        if connected:
            await until(lambda: link.connected)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def open_sockets() -> set[str]:
    """This process's sockets by inode (fd numbers get reused)."""
    targets = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            targets.add(os.readlink(f"/proc/self/fd/{fd}"))
    return {t for t in targets if t.startswith("socket:")}


def status_of(payload: bytes) -> dict[str, str]:
    value: dict[str, str] = json.loads(payload)
    return value


async def test_publish_qos_0_1_2_arrive_under_mountpoint(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """QoS 0, 1 and 2 publishes reach an independent subscriber with the mountpoint added."""
    recorder = mqtt_recorder(MP + "data/#", qos=2)
    link = create_link(make_settings(mosquitto.url), lambda _m: None)
    async with running(link):
        assert link.publish("data/0", b"zero", qos=0) is None
        await acked(link.publish("data/1", b"one", qos=1))
        await acked(link.publish("data/2", b"two", qos=2))
        got = await recorder.wait_for_async(3)
    assert {(m.topic, m.payload) for m in got} == {
        (MP + "data/0", b"zero"),
        (MP + "data/1", b"one"),
        (MP + "data/2", b"two"),
    }
    assert link.counters["acked"] >= 2


async def test_inbound_message_has_mountpoint_stripped(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """A broker message on a subscribed filter reaches on_message with the local topic."""
    peer = mqtt_recorder("unused/none")
    got: list[InboundMessage] = []
    link = create_link(make_settings(mosquitto.url), got.append)
    async with running(link):
        link.subscribe("cmd/#")
        await barrier(link)
        peer.publish(MP + "cmd/light", b"on", qos=1)
        peer.publish("edge/site2/cmd/light", b"other site", qos=1)
        await until(lambda: len(got) >= 1)
        await barrier(link)
    assert got == [InboundMessage("cmd/light", b"on", 1, False)]


async def test_subscribe_and_unsubscribe_are_reference_counted(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """Two local subscriptions make one broker SUBSCRIBE; only the last unsubscribe stops it."""
    peer = mqtt_recorder("unused/none")
    got: list[InboundMessage] = []
    link = create_link(make_settings(mosquitto.url), got.append)
    async with running(link):
        link.subscribe("cmd/#")
        link.subscribe("cmd/#")
        link.subscribe("marker")
        await barrier(link)
        assert link.counters["subscribes"] == 2
        peer.publish(MP + "cmd/a", b"1")
        await until(lambda: len(got) == 1)

        link.unsubscribe("cmd/#")
        await barrier(link)
        assert link.counters["unsubscribes"] == 0
        peer.publish(MP + "cmd/a", b"2")
        await until(lambda: len(got) == 2)

        link.unsubscribe("cmd/#")
        await barrier(link)
        assert link.counters["unsubscribes"] == 1
        peer.publish(MP + "cmd/a", b"3")
        peer.publish(MP + "marker", b"end")
        await until(lambda: len(got) == 3)
    assert [m.payload for m in got] == [b"1", b"2", b"end"]


async def test_no_local_drops_own_publishes(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """With MQTT v5 no-local the link's own publish on a subscribed topic is not delivered back."""
    peer = mqtt_recorder("unused/none")
    got: list[InboundMessage] = []
    link = create_link(make_settings(mosquitto.url), got.append)
    async with running(link):
        link.subscribe("cmd/#")
        await barrier(link)
        await acked(link.publish("cmd/x", b"own", qos=1))
        peer.publish(MP + "cmd/y", b"peer")
        await until(lambda: len(got) >= 1)
        await barrier(link)
    assert [m.payload for m in got] == [b"peer"]
    assert link.counters["protocol_fallbacks"] == 0
    assert link.counters["inbound_echo_dropped"] == 0


async def test_mqtt311_fallback_emulates_no_local(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """A broker refusing v5 gets 3.1.1, and the link drops the echoes of its own publishes."""
    proxy = TcpProxy(mosquitto.port, refuse_mqtt5=True)
    await proxy.start()
    peer = mqtt_recorder("unused/none")
    got: list[InboundMessage] = []
    link = create_link(make_settings(proxy.url), got.append)
    try:
        async with running(link):
            assert proxy.mqtt5_refused >= 1
            assert link.counters["protocol_fallbacks"] >= 1
            link.subscribe("cmd/#")
            await barrier(link)
            await acked(link.publish("cmd/x", b"own", qos=1))
            peer.publish(MP + "cmd/y", b"peer")
            await until(lambda: len(got) >= 1)
            await barrier(link)
    finally:
        await proxy.close()
    assert [m.payload for m in got] == [b"peer"]
    assert link.counters["inbound_echo_dropped"] == 1


async def test_status_online_retained_then_offline_after_clean_stop(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """The link keeps a retained online status while connected and leaves a stopped offline."""
    link = create_link(make_settings(mosquitto.url), lambda _m: None)
    async with running(link):
        await barrier(link)
        online = mqtt_recorder(STATUS).wait_for(1)[0]
        assert online.retain
        assert status_of(online.payload) == {
            "state": "online",
            "site": "site1",
            "reason": "connected",
        }
    offline = mqtt_recorder(STATUS).wait_for(1)[0]
    assert offline.retain
    assert status_of(offline.payload)["state"] == "offline"
    assert status_of(offline.payload)["reason"] == "stopped"


async def test_last_will_published_when_connection_is_killed(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """Killing the gateway's TCP connection makes the broker publish the retained offline will."""
    proxy = TcpProxy(mosquitto.port)
    await proxy.start()
    link = create_link(make_settings(proxy.url), lambda _m: None)
    try:
        async with running(link):
            await barrier(link)
            watcher = mqtt_recorder(STATUS)
            assert b"online" in watcher.wait_for(1)[0].payload
            await proxy.close()  # no reconnect possible: the will stays the last word
            await until(lambda: not link.connected)
            will = (await watcher.wait_for_async(2))[1]
            assert status_of(will.payload)["state"] == "offline"
            assert status_of(will.payload)["reason"] == "connection_lost"
            retained = mqtt_recorder(STATUS).wait_for(1)[0]
            assert retained.retain
            assert retained.payload == will.payload
    finally:
        await proxy.close()


async def test_qos1_publish_while_broker_down_delivered_once_after_restart(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """A QoS 1 publish made while the broker is down resolves after the restart, delivered once."""
    got: list[InboundMessage] = []
    link = create_link(make_settings(mosquitto.url), got.append)
    async with running(link):
        link.subscribe("cmd/#")
        await barrier(link)
        mosquitto.stop()
        await until(lambda: not link.connected)
        future = link.publish("data/restart", b"once", qos=1, retain=True)
        assert future is not None
        await asyncio.sleep(0.3)
        assert not future.done()
        mosquitto.start()
        # Retained, so the recorder sees it exactly once whether it subscribes before or after.
        recorder = mqtt_recorder(MP + "data/restart")
        await acked(future, within=10)
        assert link.connected
        await recorder.wait_for_async(1)
        await barrier(link)
        await asyncio.sleep(0.3)
        assert [m.payload for m in recorder.messages] == [b"once"]
        # Subscriptions came back with the connection.
        recorder.publish(MP + "cmd/after", b"resubscribed")
        await until(lambda: len(got) == 1)
    assert got[0].topic == "cmd/after"
    assert link.counters["reconnects"] >= 1


async def test_inflight_publish_resent_after_reconnect(
    mosquitto: MosquittoProcess, mqtt_recorder: Recorders
) -> None:
    """A publish whose PUBACK was lost with the connection is re-sent and resolves only then."""
    proxy = TcpProxy(mosquitto.port)
    await proxy.start()
    recorder = mqtt_recorder(MP + "data/inflight")
    link = create_link(make_settings(proxy.url), lambda _m: None)
    try:
        async with running(link):
            await barrier(link)
            proxy.blackhole_downstream = True
            future = link.publish("data/inflight", b"x", qos=1)
            assert future is not None
            await recorder.wait_for_async(1)
            await asyncio.sleep(0.1)
            assert not future.done()
            proxy.blackhole_downstream = False
            await proxy.kill_connections()
            await acked(future)
            await recorder.wait_for_async(2)  # at-least-once: the re-send is a second copy
    finally:
        await proxy.close()
    assert link.counters["resent"] == 1


async def test_pending_queue_full_raises_broker_unavailable() -> None:
    """Without a broker QoS 1 publishes queue up to max_pending, then BrokerUnavailable."""
    url = f"mqtt://127.0.0.1:{free_tcp_port()}"
    link = create_link(make_settings(url, max_pending=3), lambda _m: None)
    async with running(link, connected=False):
        futures = [link.publish(f"data/{i}", b"x", qos=1) for i in range(3)]
        with pytest.raises(BrokerUnavailable):
            link.publish("data/3", b"x", qos=1)
        assert link.publish("data/q0", b"x", qos=0) is None
        assert link.counters["refused_pending_full"] == 1
        assert link.counters["dropped_disconnected_qos0"] == 1
        assert not any(f is None or f.done() for f in futures)
    for future in futures:
        assert future is not None
        assert isinstance(future.exception(), BrokerUnavailable)


async def test_ready_is_set_when_broker_unreachable() -> None:
    """Readiness does not wait for a broker: it is set after the first failed attempt."""
    link = create_link(make_settings(f"mqtt://127.0.0.1:{free_tcp_port()}"), lambda _m: None)
    assert isinstance(link, GmqttLink)
    async with running(link, connected=False):
        assert not link.connected
        await until(lambda: link.counters["connect_failures"] >= 2)


@pytest.mark.parametrize("phase", ["connected", "waiting_for_connack", "backing_off"])
async def test_cancellation_leaves_no_tasks_or_sockets(
    mosquitto: MosquittoProcess, phase: str
) -> None:
    """Cancelling run() in any phase re-raises CancelledError and leaves no task or socket."""
    proxy = TcpProxy(mosquitto.port)
    await proxy.start()
    try:
        tasks_before = asyncio.all_tasks()
        sockets_before = open_sockets()
        proxy.blackhole_downstream = phase == "waiting_for_connack"
        url = f"mqtt://127.0.0.1:{free_tcp_port()}" if phase == "backing_off" else proxy.url
        link = create_link(make_settings(url), lambda _m: None)
        task = asyncio.create_task(link.run())
        if phase == "connected":
            await until(lambda: link.connected)
            link.subscribe("cmd/#")
            link.publish("data", b"x", qos=1)
        else:
            await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() - proxy.tasks == tasks_before
        # The proxy's relays end only once the link's socket is really closed.
        await until(lambda: open_sockets() <= sockets_before, within=2)
    finally:
        await proxy.close()


async def test_null_link_is_fully_local() -> None:
    """Without a broker URL the link never connects and a QoS 1 publish has nothing to wait for
    (None: done once delivered locally), but is counted as acknowledged."""
    link = create_link(make_settings(""), lambda _m: None)
    assert isinstance(link, NullLink)
    async with running(link, connected=False):
        assert not link.connected
        assert link.publish("data", b"x", qos=1) is None
        assert link.publish("data", b"x", qos=0) is None
        link.subscribe("cmd/#")
        link.unsubscribe("cmd/#")
    assert (link.counters["published"], link.counters["acked"]) == (2, 1)


@pytest.mark.parametrize("url", ["", "mqtt://127.0.0.1:1"])
async def test_invalid_topics_are_rejected(url: str) -> None:
    """Wildcards in a publish topic or malformed filters raise ValueError before any I/O."""
    link = create_link(make_settings(url), lambda _m: None)
    with pytest.raises(ValueError):
        link.publish("a/+", b"x", qos=1)
    with pytest.raises(ValueError):
        link.subscribe("a/#/b")
    with pytest.raises(ValueError):
        link.publish("a", b"x", qos=3)
