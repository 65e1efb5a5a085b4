"""MQTT-SN clients through the gateway to a real mosquitto, and back (independent peers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import cbor2
import pytest
from mqttsn12.client.MqttSnClient import MqttSnClient, MqttSnListener, MqttSnMessage

from gateway.app import Gateway
from gateway.mqttsn.constants import QoS, ReturnCode
from gateway.mqttsn.packets import PubAck, Publish, RegAck, Register
from schemas import TelemetryBatch
from tests.helpers import MosquittoProcess, MqttRecorder, TcpProxy
from tests.integration.gateway_runner import (
    address,
    broker_connected,
    broker_disconnected,
    broker_subscribed,
    gateway_settings,
    running_gateway,
)
from tests.integration.mqttsn_client import UdpMqttSnClient

pytestmark = pytest.mark.integration

Recorder = Callable[..., MqttRecorder]


def mqttsn12_client(gateway: tuple[str, int], client_id: str) -> MqttSnClient:
    client = MqttSnClient()
    client.set_client_id(client_id)
    client.set_timeout(5)
    client.open(gateway[0], gateway[1])
    return client


def publish_with_mqttsn12(gateway: tuple[str, int], topic: str, payloads: list[bytes]) -> None:
    """Connect, publish one payload per QoS 0, 1, 2 (cycling), disconnect: the PyPI client."""
    client = mqttsn12_client(gateway, "mqttsn12-pub")
    try:
        client.send_connect()
        for n, payload in enumerate(payloads):
            client.send_publish(topic, payload, n % 3)
        client.send_disconnect()
    finally:
        client.close()


class _Collector(MqttSnListener):
    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []

    def message_arrived(self, msg: MqttSnMessage) -> None:
        self.received.append((msg.get_topic_name(), bytes(msg.get_payload())))


def subscribe_with_mqttsn12(
    gateway: tuple[str, int], topic_filter: str, subscribed: asyncio.Event,
    loop: asyncio.AbstractEventLoop, want: int, within: float,
) -> list[tuple[str, bytes]]:
    """Subscribe with the PyPI client and poll until `want` messages arrived or time is up."""
    client = mqttsn12_client(gateway, "mqttsn12-sub")
    collector = _Collector()
    try:
        client.send_connect()
        client.send_subscribe(topic_filter, 1, collector)
        loop.call_soon_threadsafe(subscribed.set)
        deadline = time.monotonic() + within
        while len(collector.received) < want and time.monotonic() < deadline:
            client.polling()
            time.sleep(0.01)
        return collector.received
    finally:
        client.close()


async def test_mqttsn12_publishes_reach_the_broker_under_the_mountpoint(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """QoS 0, 1 and 2 publishes from the mqtt-sn-12 client reach an MQTT subscriber once each."""
    recorder = mqtt_recorder("edge/#", qos=2)
    async with running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway:
        await broker_connected(gateway)  # QoS 0 is dropped while the broker is not connected
        payloads = [f"reading-{n}".encode() for n in range(6)]
        await asyncio.to_thread(
            publish_with_mqttsn12, address(gateway), "sensors/s1/raw", payloads
        )
        got = await recorder.wait_for_async(7)
        await asyncio.sleep(0.3)
    readings = [m for m in recorder.messages if m.topic == "edge/site1/sensors/s1/raw"]
    assert sorted(m.payload for m in readings) == sorted(payloads)
    status = [m for m in got if m.topic == "edge/site1/gateway/status"]
    assert json.loads(status[0].payload)["state"] == "online"


async def test_broker_messages_reach_mqttsn12_wildcard_subscriber(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """A back-office publish on the mountpoint reaches an mqtt-sn-12 wildcard subscriber."""
    back_office = mqtt_recorder("edge/site1/none", qos=1)
    async with running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway:
        loop = asyncio.get_running_loop()
        subscribed = asyncio.Event()
        received = asyncio.ensure_future(asyncio.to_thread(
            subscribe_with_mqttsn12, address(gateway), "actuators/+/set", subscribed, loop, 2, 8
        ))
        await asyncio.wait_for(subscribed.wait(), 5)
        await broker_subscribed(gateway)
        back_office.publish("edge/site1/actuators/plug1/set", b'{"state":"on"}')
        back_office.publish("edge/site1/actuators/plug2/set", b'{"state":"off"}')
        got = await received
    assert got == [
        ("actuators/plug1/set", b'{"state":"on"}'), ("actuators/plug2/set", b'{"state":"off"}')
    ]


async def test_local_subscriber_gets_each_message_once_with_the_broker_up(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """Local routing plus the broker never doubles a message (no-local on the broker link)."""
    recorder = mqtt_recorder("edge/site1/actuators/#", qos=1)
    async with (
        running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway,
        UdpMqttSnClient(address(gateway)) as actuator,
        UdpMqttSnClient(address(gateway)) as panel,
    ):
        await actuator.connect("actuator")
        await actuator.subscribe("actuators/light.kitchen/set", qos=1)
        await broker_subscribed(gateway)
        await panel.connect("panel")
        topic_id = await panel.register("actuators/light.kitchen/set")
        for n in range(5):
            await panel.publish(topic_id, f"cmd-{n}".encode(), qos=1)
        got = [await actuator.next_message() for _ in range(5)]
        await actuator.nothing(0.5)
        await recorder.wait_for_async(5)
    assert [data for _, data in got] == [f"cmd-{n}".encode() for n in range(5)]
    assert len(recorder.messages) == 5


async def test_broker_outage_holds_puback_when_the_spool_is_off(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """Spool off: QoS 1 with the broker down is delivered locally at once, and PUBACKed only
    after the restarted broker has it."""
    recorder = mqtt_recorder("edge/site1/sensors/#", qos=1)
    settings = gateway_settings(tmp_path, mosquitto.url, spool={"enabled": False})
    async with (
        running_gateway(settings) as gateway,
        UdpMqttSnClient(address(gateway)) as sensor,
        UdpMqttSnClient(address(gateway)) as local,
    ):
        await local.connect("local-sub")
        await local.subscribe("sensors/+/raw", qos=0)
        await sensor.connect("sensor")
        topic_id = await sensor.register("sensors/sensor/raw")
        await asyncio.to_thread(mosquitto.stop)
        await broker_disconnected(gateway)
        # Retained, so that the recorder (which reconnects on its own schedule) gets it whether it
        # resubscribes before or after the gateway hands it to the restarted broker.
        msg_id = await sensor.publish(topic_id, b"during-outage", qos=1, wait=False, retain=True)
        assert await local.next_message() == ("sensors/sensor/raw", b"during-outage")
        await sensor.nothing(1.0)  # no PUBACK while the broker cannot have it
        await asyncio.to_thread(mosquitto.start)
        ack = await sensor.expect(PubAck, timeout=10)
        assert (ack.msg_id, ack.return_code) == (msg_id, ReturnCode.ACCEPTED)
        await recorder.wait_for_async(1, within=10)
        await asyncio.sleep(0.3)
    assert [m.payload for m in recorder.messages] == [b"during-outage"]


async def test_broker_outage_spools_and_replays_exactly_once(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """Spool on (default): QoS 1 and QoS 0 published while the broker is unreachable are
    PUBACKed once on disk and reach the broker exactly once when it is reachable again, marked
    as replayed with distinct (gateway, seq) keys; live messages carry a key too."""
    recorder = mqtt_recorder("edge/site1/sensors/#", qos=1, mqtt5=True)
    proxy = TcpProxy(mosquitto.port)  # the outage is between gateway and broker only
    await proxy.start()
    try:
        async with (
            running_gateway(gateway_settings(tmp_path, proxy.url)) as gateway,
            UdpMqttSnClient(address(gateway)) as sensor,
        ):
            await sensor.connect("sensor")
            topic_id = await sensor.register("sensors/sensor/raw")
            await broker_connected(gateway)
            await sensor.publish(topic_id, b"live", qos=1)
            (live,) = await recorder.wait_for_async(1)
            recorder.clear()
            port = proxy.port
            await proxy.close()
            await broker_disconnected(gateway)
            for n in range(20):
                await sensor.publish(topic_id, f"q1-{n}".encode(), qos=1)
            await sensor.publish(topic_id, b"q0", qos=0)
            await recorder_sees_nothing(recorder, 0.3)
            await proxy.start(port)
            await recorder.wait_for_async(21, within=15)
            await asyncio.sleep(0.5)
    finally:
        await proxy.close()
    payloads = sorted(m.payload for m in recorder.messages)
    assert payloads == sorted([f"q1-{n}".encode() for n in range(20)] + [b"q0"])
    keys = [dict(m.user_properties) for m in recorder.messages]
    assert all(k.get("egw-replay") == "1" and k["egw-gateway"] == "site1-1" for k in keys)
    seqs = [int(k["egw-seq"]) for k in keys]
    assert len(set(seqs)) == 21 and min(seqs) > int(dict(live.user_properties)["egw-seq"])
    assert "egw-replay" not in dict(live.user_properties)


async def recorder_sees_nothing(recorder: MqttRecorder, seconds: float) -> None:
    await asyncio.sleep(seconds)
    assert recorder.messages == []


async def test_spooled_messages_survive_a_gateway_restart(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """Acknowledged while the broker was down, stopped, restarted with the broker back: nothing
    acknowledged is lost."""
    async with (
        running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway,
        UdpMqttSnClient(address(gateway)) as sensor,
    ):
        port = address(gateway)[1]
        await broker_connected(gateway)
        await asyncio.to_thread(mosquitto.stop)
        await broker_disconnected(gateway)
        await sensor.connect("sensor")
        topic_id = await sensor.register("sensors/sensor/raw")
        for n in range(10):
            await sensor.publish(topic_id, f"kept-{n}".encode(), qos=1, retain=n == 9)
    await asyncio.to_thread(mosquitto.start)
    recorder = mqtt_recorder("edge/site1/sensors/#", qos=1)
    async with running_gateway(gateway_settings(tmp_path, mosquitto.url, port=port)):
        await recorder.wait_for_async(10, within=15)
        await asyncio.sleep(0.5)
    assert sorted(m.payload for m in recorder.messages) == sorted(
        f"kept-{n}".encode() for n in range(10)
    )


async def test_will_of_a_lost_client_is_published_to_the_broker(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """A client silent for 1.5 x its keep-alive is lost and its will reaches the broker."""
    recorder = mqtt_recorder("edge/site1/wills/#", qos=1)
    async with running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway:
        client = mqttsn12_client(address(gateway), "will-client")
        client.set_keep_alive(1)
        client.set_will("wills/will-client", "gone", 1, False)
        try:
            await asyncio.to_thread(client.send_connect)
            got = await recorder.wait_for_async(1, within=6)
        finally:
            client.close()
    assert [(m.topic, m.payload) for m in got] == [("edge/site1/wills/will-client", b"gone")]


async def test_wildcard_delivery_registers_the_topic_first(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """A broker message for a wildcard subscriber is preceded by the gateway's REGISTER."""
    back_office = mqtt_recorder("edge/site1/none", qos=1)
    async with (
        running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway,
        UdpMqttSnClient(address(gateway)) as client,
    ):
        await client.connect("wild")
        assert await client.subscribe("actuators/#", qos=1) == 0
        await broker_subscribed(gateway)
        back_office.publish("edge/site1/actuators/fan/set", b"1")
        reg = await client.expect(Register)
        assert reg.topic_name == "actuators/fan/set"
        await client.nothing(0.3)  # no PUBLISH before the REGACK
        client.send(RegAck(reg.topic_id, reg.msg_id, ReturnCode.ACCEPTED))
        pub = await client.expect(Publish)
        assert (pub.topic_id, pub.data, pub.qos) == (reg.topic_id, b"1", QoS.AT_LEAST_ONCE)


async def test_telemetry_is_normalised_before_it_reaches_the_broker(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """A CBOR map on devices/{id}/telemetry reaches the broker as a normalised JSON batch."""
    recorder = mqtt_recorder("edge/site1/devices/#", qos=1)
    async with (
        running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway,
        UdpMqttSnClient(address(gateway)) as sensor,
    ):
        await sensor.connect("thermo1")
        topic_id = await sensor.register("devices/thermo1/telemetry")
        await sensor.publish(topic_id, cbor2.dumps({"temp": 21.5, "door": True}), qos=1)
        (got,) = await recorder.wait_for_async(1)
    batch = TelemetryBatch.model_validate_json(got.payload)
    assert got.topic == "edge/site1/devices/thermo1/telemetry"
    assert (batch.device_id, batch.source) == ("thermo1", "mqttsn")
    assert {(r.name, r.value, r.bool_value) for r in batch.readings} == {
        ("temp", 21.5, None), ("door", None, True)
    }


async def test_invalid_telemetry_is_refused_and_never_bridged(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """Garbage on a telemetry topic gets PUBACK 'not supported' and nothing reaches the broker."""
    recorder = mqtt_recorder("edge/site1/devices/#", qos=1)
    async with (
        running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway,
        UdpMqttSnClient(address(gateway)) as sensor,
    ):
        await sensor.connect("broken1")
        topic_id = await sensor.register("devices/broken1/telemetry")
        msg_id = await sensor.publish(topic_id, b"\xa1\x61", qos=1, wait=False)
        ack = await sensor.expect(PubAck)
        assert (ack.msg_id, ack.return_code) == (msg_id, ReturnCode.NOT_SUPPORTED)
        await asyncio.sleep(0.3)
    assert recorder.messages == []


def _refusing_broker(directory: Path) -> MosquittoProcess:
    """A mosquitto whose ACL refuses publishes under edge/site1/sensors/denied/ (for MQTT v5
    it answers them with PUBACK reason code 0x87, not authorized)."""
    directory.mkdir(parents=True, exist_ok=True)
    acl = directory / "acl"
    acl.write_text("topic readwrite #\ntopic deny edge/site1/sensors/denied/#\n")
    return MosquittoProcess(directory, extra_config=f"acl_file {acl}\n")


@contextlib.asynccontextmanager
async def _sensor_on_refusing_broker(
    tmp_path: Path,
) -> AsyncIterator[tuple[MosquittoProcess, Gateway, UdpMqttSnClient, int, int]]:
    """Broker, gateway connected to it, and a sensor with topic ids for a denied and an
    allowed topic."""
    broker = _refusing_broker(tmp_path / "broker")
    broker.start()
    try:
        async with (
            running_gateway(gateway_settings(tmp_path / "gw", broker.url)) as gateway,
            UdpMqttSnClient(address(gateway)) as sensor,
        ):
            await broker_connected(gateway)
            await sensor.connect("sensor")
            denied = await sensor.register("sensors/denied/raw")
            allowed = await sensor.register("sensors/allowed/raw")
            yield broker, gateway, sensor, denied, allowed
    finally:
        broker.stop()


async def test_a_publish_the_broker_refuses_is_not_acknowledged_as_safe(tmp_path: Path) -> None:
    """A v5 PUBACK with a failure reason code is not an acknowledgement: the sensor's QoS 1
    publish gets *congestion*, the refusal is counted, the next allowed publish is accepted."""
    async with _sensor_on_refusing_broker(tmp_path) as (_, gateway, sensor, denied, allowed):
        msg_id = await sensor.publish(denied, b"refused", qos=1, wait=False)
        ack = await sensor.expect(PubAck, timeout=5)
        assert (ack.msg_id, ack.return_code) == (msg_id, ReturnCode.CONGESTION)
        msg_id = await sensor.publish(allowed, b"taken", qos=1, wait=False)
        ack = await sensor.expect(PubAck, timeout=5)
        assert (ack.msg_id, ack.return_code) == (msg_id, ReturnCode.ACCEPTED)
        assert gateway.bus is not None
        assert gateway.bus.link.counters["refused_by_broker"] == 1


async def test_a_spooled_message_the_broker_refuses_does_not_block_the_replay(
    tmp_path: Path,
) -> None:
    """Spooled during an outage, a refused message is dropped from the spool (counted) when the
    broker refuses its replay; what was spooled after it is still delivered."""
    async with _sensor_on_refusing_broker(tmp_path) as (broker, gateway, sensor, denied, allowed):
        assert gateway.uplink is not None
        await asyncio.to_thread(broker.stop)
        await broker_disconnected(gateway)
        await sensor.publish(denied, b"refused", qos=1)  # PUBACKed: safe in the spool
        # Retained: the recorder gets it whether it subscribes before or after the replay.
        await sensor.publish(allowed, b"after", qos=1, retain=True)
        await asyncio.to_thread(broker.start)
        recorder = MqttRecorder(broker.host, broker.port, "edge/site1/sensors/#", 1).start()
        try:
            await recorder.wait_for_async(1, within=10)
            counters = gateway.uplink.spool_counters
            for _ in range(100):
                if counters["refused_by_broker"]:
                    break
                await asyncio.sleep(0.05)
            assert [m.payload for m in recorder.messages] == [b"after"]
            assert counters["refused_by_broker"] == 1
        finally:
            recorder.stop()
