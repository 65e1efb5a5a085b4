"""A small simulated fleet against a real in-process gateway: exact counts on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor_sim.fleet import Fleet, Target
from sensor_sim.scenario import parse_scenario
from tests.integration.gateway_runner import address, gateway_settings, running_gateway

pytestmark = pytest.mark.integration

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

[[panels]]
name = "panel"
ids = ["panel1"]
protocol = "mqttsn-qos1"
rate = 2.0
utterances = ["turn off the kitchen lights", "turn on the kitchen lights"]

[[actuators]]
ids = ["light.kitchen", "light.living_room"]
"""


async def test_small_fleet_counts_exactly(tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO)
    async with running_gateway(gateway_settings(tmp_path)) as gateway:
        host, port = address(gateway)
        assert gateway.coap is not None and gateway.coap.address is not None
        fleet = Fleet(scenario, Target(host, port, gateway.coap.address[1]), duration=3.0)
        report = await fleet.run()
    assert report["errors"] == {}
    assert report["sent"] > 40
    # Every message is confirmable here: all acknowledged, nothing lost, nothing twice.
    assert report["sent"] == report["acked"]
    assert (report["lost"], report["rejected"], report["pending"]) == (0, 0, 0)
    assert (report["duplicated"], report["retransmitted"]) == (0, 0)
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
