"""Small simulated fleets against a real in-process gateway: exact counts on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sensor_sim.fleet import Fleet, Target
from sensor_sim.scenario import parse_scenario
from tests.helpers import MosquittoProcess
from tests.integration.gateway_runner import (
    address,
    broker_connected,
    gateway_settings,
    running_gateway,
)

pytestmark = pytest.mark.integration

PANEL = """
[[panels]]
name = "panel"
ids = ["panel1"]
protocol = "mqttsn-qos1"
rate = 2.0
utterances = ["turn off the kitchen lights", "turn on the kitchen lights"]
"""

SCENARIO = """
name = "small"
seed = 3
[timing]
drain = 5.0

[[sensors]]
name = "coap-con"
id_prefix = "simc"
count = 2
protocol = "coap-con"
payload = "senml-cbor"
rate = 4.0
quantities = ["temp", "humidity"]

[[sensors]]
name = "mqttsn-qos1"
id_prefix = "simq"
count = 2
protocol = "mqttsn-qos1"
payload = "json"
rate = 4.0
quantities = ["temp", "co2"]

[[sensors]]
name = "mqttsn-qos2"
id_prefix = "simx"
count = 1
protocol = "mqttsn-qos2"
payload = "senml-json"
rate = 4.0
quantities = ["temp"]
""" + PANEL + """
[[actuators]]
ids = ["light.kitchen", "light.living_room"]
"""

LOSSY = """
name = "lossy"
seed = 21
[timing]
mqttsn_retry = 0.2
mqttsn_retries = 10
coap_ack_timeout = 0.2
coap_max_retransmit = 10
drain = 3.0

[faults]
loss = 0.25
reorder = 0.1
reorder_delay = 0.03

[[sensors]]
name = "qos1"
id_prefix = "lq1-"
count = 3
protocol = "mqttsn-qos1"
payload = "cbor"
rate = 5.0

[[sensors]]
name = "qos2"
id_prefix = "lq2-"
count = 1
protocol = "mqttsn-qos2"
payload = "cbor"
rate = 5.0

[[sensors]]
name = "con"
id_prefix = "lcon-"
count = 2
protocol = "coap-con"
payload = "senml-cbor"
rate = 5.0

[[sensors]]
name = "qos0"
id_prefix = "lq0-"
count = 2
protocol = "mqttsn-qos0"
payload = "cbor"
rate = 5.0
"""

STORMS = """
name = "storms"
seed = 4
[timing]
mqttsn_retry = 0.3
drain = 0.5

[[sensors]]
name = "rebooting"
id_prefix = "rb-"
count = 3
protocol = "mqttsn-qos1"
payload = "cbor"
rate = 4.0
[sensors.faults]
reboot_interval = 1.0
reboot_fraction = 1.0
garbage = 0.3

[[sensors]]
name = "rebooting-coap"
id_prefix = "rbc-"
count = 2
protocol = "coap-con"
payload = "cbor"
rate = 4.0
[sensors.faults]
reboot_interval = 1.0
reboot_fraction = 1.0

[[sensors]]
name = "sleepers"
id_prefix = "sl-"
count = 3
protocol = "mqttsn-qos1"
payload = "cbor"
rate = 1.0
jitter = 0.0
sleep_duration = 1
[sensors.faults]
oversleep = 0.5
"""


def target(gateway: Any) -> Target:
    host, port = address(gateway)
    assert gateway.coap is not None and gateway.coap.address is not None
    return Target(host, port, gateway.coap.address[1])


def confirmable_delivered(report: dict[str, Any], classes: list[str]) -> None:
    for name in classes:
        counts = report["by_class"][name]
        assert counts["sent"] > 0, name
        assert counts["acked"] == counts["sent"], (name, counts)
        assert (counts["lost"], counts["rejected"], counts["pending"]) == (0, 0, 0), name


async def test_small_fleet_counts_exactly(tmp_path: Path) -> None:
    """Without faults every confirmable message is acknowledged once and every command lands."""
    async with running_gateway(gateway_settings(tmp_path)) as gateway:
        fleet = Fleet(parse_scenario(SCENARIO), target(gateway), duration=3.0)
        report = await fleet.run()
    assert report["errors"] == {}
    assert report["sent"] > 40
    # Every message is confirmable here: all acknowledged, nothing lost, nothing twice.
    assert report["sent"] == report["acked"]
    assert (report["lost"], report["rejected"], report["pending"]) == (0, 0, 0)
    assert (report["duplicated"], report["retransmitted"]) == (0, 0)
    assert set(report["faults"].values()) == {0}
    panel = report["by_class"]["panel"]
    assert panel["sent"] >= 4
    # Every panel command got its decision, and each one's action reached light.kitchen.
    assert report["panel_decisions"] == panel["sent"]
    assert report["panel_actions"] == panel["sent"]
    assert report["commands_by_actuator"] == {"light.kitchen": panel["sent"]}
    assert report["commands_received"] == panel["sent"]
    assert report["commands_not_from_panels"] == 0
    assert report["latency_ms"]["count"] == panel["sent"]
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["max"] < 2000


async def test_coap_observer_actuator_records_every_command(tmp_path: Path) -> None:
    """An actuator observing `actuators/{id}/set` over CoAP gets each panel command once."""
    scenario = parse_scenario('name = "observe"\n[timing]\ndrain = 5.0\n' + PANEL
                              + '[[actuators]]\nname = "obs"\nprotocol = "coap"\n'
                              'ids = ["light.kitchen"]\n')
    async with running_gateway(gateway_settings(tmp_path)) as gateway:
        fleet = Fleet(scenario, target(gateway), duration=2.5)
        report = await fleet.run()
        assert gateway.coap is not None
        observers = gateway.coap.observers  # the gateway still counts the (closed) observer
    assert report["errors"] == {}
    sent = report["by_class"]["panel"]["sent"]
    assert sent >= 3 and report["acked"] == sent
    assert report["commands_by_actuator"] == {"light.kitchen": sent}
    assert report["latency_ms"]["count"] == sent and report["duplicated"] == 0
    assert observers == 1


async def test_injected_loss_still_delivers_every_confirmable_message(tmp_path: Path) -> None:
    """With 25 % of datagrams dropped, QoS 1/2 and CON devices retransmit until acknowledged."""
    async with running_gateway(gateway_settings(tmp_path)) as gateway:
        fleet = Fleet(parse_scenario(LOSSY), target(gateway), duration=3.0)
        report = await fleet.run()
    confirmable_delivered(report, ["qos1", "qos2", "con"])
    qos0 = report["by_class"]["qos0"]
    assert qos0["sent"] > 0 and qos0["unconfirmed"] == qos0["sent"]
    assert report["faults"]["dropped"] > 10 and report["faults"]["reordered"] > 0
    assert report["retransmitted"] >= report["faults"]["dropped"] * 0.5
    assert set(report["errors"]) <= {"mqttsn_registered_again"}


async def test_reboot_storms_and_oversleeping_sleepers(tmp_path: Path) -> None:
    """Every storm reboots every chosen device; oversleepers are declared lost and come back."""
    async with running_gateway(gateway_settings(tmp_path)) as gateway:
        fleet = Fleet(parse_scenario(STORMS), target(gateway), duration=3.5)
        report = await fleet.run()
        assert gateway.core is not None
        lost_asleep = gateway.core.counters["client_lost_sleep"]
        connects = gateway.core.counters["rx_CONNECT"]
    confirmable_delivered(report, ["rebooting", "rebooting-coap", "sleepers"])
    faults = report["faults"]
    assert faults["reboots"] == 3 * 5  # storms at 1, 2 and 3 s; 5 devices, all chosen
    assert faults["garbage"] > 0
    assert faults["oversleeps"] > 0
    # The gateway noticed each oversleep, except perhaps each sleeper's last one (the run ended
    # before the gateway's 1.5 x duration deadline).
    assert faults["oversleeps"] - 3 <= lost_asleep <= faults["oversleeps"]
    # CONNECTs: each MQTT-SN device once at setup, each reboot once, each sleeper's every wake.
    assert connects == 3 + 3 * 3 + 3 + report["by_class"]["sleepers"]["sent"]
    assert report["errors"] == {}


async def test_broker_option_counts_decisions_seen_upstream(tmp_path: Path) -> None:
    """With a broker, every decision and actuator command is also counted at the broker."""
    scenario = parse_scenario('name = "up"\n[timing]\ndrain = 5.0\n' + PANEL
                              + '[[actuators]]\nids = ["light.kitchen"]\n')
    (tmp_path / "broker").mkdir()
    with MosquittoProcess(tmp_path / "broker") as broker:
        settings = gateway_settings(tmp_path, broker.url)
        async with running_gateway(settings) as gateway:
            await broker_connected(gateway)
            fleet = Fleet(scenario, target(gateway), duration=2.5, broker=broker.url,
                          mountpoint=settings.mountpoint)
            report = await fleet.run()
    sent = report["by_class"]["panel"]["sent"]
    assert sent >= 3 and report["panel_decisions"] == sent
    assert report["upstream"] == {"decisions": sent, "actuator_commands": sent}
    assert report["errors"] == {}
