"""`sensor-sim` as a command: the report contract, worker processes, fault flags, the sink."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gateway_runner import address, gateway_settings, running_gateway

pytestmark = pytest.mark.integration

SCENARIO = """
name = "cli"
seed = 2
[timing]
mqttsn_retry = 0.2
mqttsn_retries = 10
coap_ack_timeout = 0.2
coap_max_retransmit = 10
drain = 3.0

[[sensors]]
name = "qos1"
id_prefix = "cq1-"
count = 6
protocol = "mqttsn-qos1"
payload = "cbor"
rate = 3.0

[[sensors]]
name = "con"
id_prefix = "ccon-"
count = 4
protocol = "coap-con"
payload = "senml-cbor"
rate = 3.0

[[sensors]]
name = "non"
id_prefix = "cnon-"
count = 2
protocol = "coap-non"
payload = "json"
rate = 3.0

[[panels]]
name = "panel"
ids = ["panel1"]
protocol = "mqttsn-qos1"
rate = 2.0
utterances = ["turn off the kitchen lights", "turn on the kitchen lights"]

[[actuators]]
ids = ["light.kitchen"]
"""
SENSORS_ONLY = SCENARIO.split("[[panels]]", maxsplit=1)[0]
CONTRACT = {"sent", "acked", "lost", "duplicated", "commands_received", "latency_ms",
            "offered_rate", "achieved_rate", "errors"}


def sim(*args: str) -> list[str]:
    return [sys.executable, "-m", "sensor_sim", *args]


@contextlib.contextmanager
def running_sink() -> Iterator[tuple[str, str, list[str]]]:
    """`sensor-sim sink` on free ports: (mqttsn port, coap port, its final output lines)."""
    sink = subprocess.Popen(sim("sink", "--mqttsn-port", "0", "--coap-port", "0"),
                            stdout=subprocess.PIPE, text=True)
    final: list[str] = []
    try:
        assert sink.stdout is not None
        words = sink.stdout.readline().split()  # "sink on HOST: mqttsn P coap P (...)"
        yield words[4], words[6], final
    finally:
        os.kill(sink.pid, signal.SIGINT)
        out, _ = sink.communicate(timeout=10)
        final.extend(out.strip().splitlines())


async def test_run_command_against_the_gateway_writes_the_report(tmp_path: Path) -> None:
    """The documented command line runs the fleet and writes every report key, exactly."""
    scenario = tmp_path / "cli.toml"
    scenario.write_text(SCENARIO)
    report = tmp_path / "report.json"
    async with running_gateway(gateway_settings(tmp_path)) as gateway:
        host, port = address(gateway)
        assert gateway.coap is not None and gateway.coap.address is not None
        proc = await asyncio.create_subprocess_exec(
            *sim("run", str(scenario), "--host", host, "--mqttsn-port", str(port),
                 "--coap-port", str(gateway.coap.address[1]), "--duration", "2",
                 "--report", str(report)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(report.read_text())
    assert result.keys() >= CONTRACT
    assert set(result["latency_ms"]) >= {"p50", "p90", "p99", "max"}
    assert result["devices"] == 13 and result["offered_rate"] == 38.0
    assert result["errors"] == {} and result["lost"] == 0
    assert result["acked"] == result["sent"] - result["unconfirmed"]
    assert result["commands_received"] == result["by_class"]["panel"]["sent"] > 0
    assert "sensor-sim cli: 13 devices" in out.decode()  # the final table, no live view


def test_workers_and_fault_flags_against_the_sink(tmp_path: Path) -> None:
    """Two worker processes share the sensors; `--fault loss=...` drops datagrams in both."""
    scenario = tmp_path / "cli.toml"
    scenario.write_text(SENSORS_ONLY)
    report = tmp_path / "report.json"
    with running_sink() as (mqttsn_port, coap_port, sink_output):
        proc = subprocess.run(
            sim("run", str(scenario), "--mqttsn-port", mqttsn_port, "--coap-port", coap_port,
                "--duration", "1.5", "--workers", "2", "--fault", "loss=0.2", "--no-live",
                "--report", str(report)),
            capture_output=True, text=True, timeout=90, check=False,
        )
        assert proc.returncode == 0, proc.stderr
    result = json.loads(report.read_text())
    assert result["devices"] == 12
    assert result["faults"]["dropped"] > 0 and result["retransmitted"] > 0
    for name in ("qos1", "con"):
        counts = result["by_class"][name]
        assert counts["sent"] > 0 and counts["acked"] == counts["sent"], (name, counts)
    assert result["by_class"]["non"]["unconfirmed"] == result["by_class"]["non"]["sent"] > 0
    counters = json.loads(sink_output[-1])
    # Every datagram the devices sent and the injector let through reached the sink.
    assert counters["mqttsn_received"] > result["by_class"]["qos1"]["sent"]
    assert counters["coap_received"] >= result["by_class"]["non"]["sent"] * 0.6


def test_ctrl_c_ends_the_run_early_and_still_writes_the_report(tmp_path: Path) -> None:
    """SIGINT stops the devices; the report of what was done so far is still written."""
    scenario = tmp_path / "cli.toml"
    scenario.write_text(SENSORS_ONLY)
    report = tmp_path / "report.json"
    with running_sink() as (mqttsn_port, coap_port, _):
        run = subprocess.Popen(
            sim("run", str(scenario), "--mqttsn-port", mqttsn_port, "--coap-port", coap_port,
                "--duration", "60", "--no-live", "--report", str(report)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert run.stderr is not None
            started = run.stderr.readline()  # the clock has started
            assert "12 devices connected" in started, started
            time.sleep(1.0)
            os.kill(run.pid, signal.SIGINT)
            _, err = run.communicate(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        assert run.returncode == 0, err
    result = json.loads(report.read_text())
    assert 0.5 < result["elapsed_s"] < 30
    assert result["sent"] > 10
    assert result["sent"] == result["acked"] + result["unconfirmed"] + result["pending"]
