"""`sensor-sim`: run a simulated fleet against a gateway and write the report.

    sensor-sim run smart-home --host 127.0.0.1 --mqttsn-port 1884 --coap-port 5683 \
        --duration 30 --report report.json
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from gateway.logconfig import configure_logging
from gateway.recognizer.artifact import ModelIntegrityError
from schemas.config import LogConfig
from schemas.scenario import Faults, Scenario
from sensor_sim import runner
from sensor_sim.cloud import DEFAULT_REQUEST_TOPIC, CloudService
from sensor_sim.fleet import Target, dumps, plan
from sensor_sim.live import summary_table
from sensor_sim.mqttsn_client import MqttSnTimeout
from sensor_sim.runner import RunSpec
from sensor_sim.scenario import ScenarioError, load_scenario, shipped_scenarios
from sensor_sim.sink import serve as serve_sink
from sensor_sim.upstream import UpstreamError

__all__ = ["Console", "app", "summary_table"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulated sensor fleets.")


@app.callback()
def main() -> None:
    """Simulated MQTT-SN and CoAP sensor fleets, text panels and actuators."""


@app.command("list")
def list_scenarios() -> None:
    """The shipped scenarios."""
    for name in shipped_scenarios():
        typer.echo(name)


@app.command()
def run(  # noqa: PLR0917
    scenario: Annotated[str, typer.Argument(help="Shipped scenario name or a file path.")],
    report: Annotated[Path, typer.Option("--report", help="Write the JSON report here.")],
    host: Annotated[str, typer.Option(help="Gateway host.")] = "127.0.0.1",
    mqttsn_port: Annotated[int, typer.Option(help="Gateway MQTT-SN UDP port.")] = 1884,
    coap_port: Annotated[int, typer.Option(help="Gateway CoAP UDP port.")] = 5683,
    broker: Annotated[str, typer.Option(
        help="Broker the gateway bridges to (mqtt://host:port): count the decisions and "
        "actuator commands seen there (report: upstream).")] = "",
    mountpoint: Annotated[str, typer.Option(
        help="The gateway's broker mountpoint (EGW_BROKER__MOUNTPOINT, {site} resolved).")]
        = "edge/site1/",
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of sending.")] = 30.0,
    devices: Annotated[int | None, typer.Option(min=0, help="Total sensors (scaled).")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Total sensor msg/s.")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        help="Override a fault of every class, NAME=VALUE (e.g. loss=0.1); repeatable.")]
        = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, max=64, help="Processes to spread the sensors over.")] = 1,
    live: Annotated[bool, typer.Option(
        "--live/--no-live", help="Live view (only when stdout is a terminal).")] = True,
) -> None:
    """Run SCENARIO for DURATION seconds and write the report."""
    try:
        loaded = with_overrides(load_scenario(scenario), fault or [], seed)
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    console = Console()
    spec = RunSpec(loaded, Target(host, mqttsn_port, coap_port), duration, devices, rate,
                   broker, mountpoint)
    raise_nofile(len(plan(loaded, devices, rate)) + 1000)
    try:
        result = runner.run(spec, workers=workers, live=live and console.is_terminal,
                            console=console)
    except* (UpstreamError, runner.WorkerFailed, ConnectionError, MqttSnTimeout,
             OSError) as group:
        for error in group.exceptions:
            typer.echo(f"sensor-sim: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    report.write_text(dumps(result), encoding="utf-8")
    console.print(summary_table(result))


@app.command()
def sink(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    mqttsn_port: Annotated[int, typer.Option(help="MQTT-SN UDP port (0: any).")] = 1884,
    coap_port: Annotated[int, typer.Option(help="CoAP UDP port (0: any).")] = 5683,
) -> None:
    """Acknowledge everything, like a gateway that does no work: measures the simulator."""
    counters: Counter[str] = Counter()

    async def main() -> None:
        ports = await serve_sink(host, mqttsn_port, coap_port, counters)
        typer.echo(f"sink on {host}: mqttsn {ports[0]} coap {ports[1]} (Ctrl-C stops)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()

    runner.run_loop(main)
    typer.echo(json.dumps(dict(sorted(counters.items()))))


@app.command()
def cloud(
    broker: Annotated[str, typer.Option(help="Broker URL, mqtt://host:port (MQTT v5).")],
    request_topic: Annotated[str, typer.Option(
        help="Request topic (or filter) to serve; the gateway's EGW_CLOUD__REQUEST_TOPIC.")]
        = DEFAULT_REQUEST_TOPIC,
    model: Annotated[Path | None, typer.Option(
        help="Model manifest or .onnx file; default: the shipped cloud model.")] = None,
    delay_ms: Annotated[float, typer.Option(
        min=0.0, help="Answer this many milliseconds late (demonstrates deadlines).")] = 0.0,
    client_id: Annotated[str, typer.Option(help="MQTT client id.")] = "",
) -> None:
    """Run the reference cloud recogniser until SIGINT/SIGTERM (JSON log lines on stderr)."""
    configure_logging(LogConfig())
    try:
        service = CloudService.load(model, broker_url=broker, request_topic=request_topic,
                                    client_id=client_id, delay_ms=delay_ms)
    except (ValueError, ModelIntegrityError) as exc:
        typer.echo(f"sensor-sim cloud: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with asyncio.TaskGroup() as group:
            serving = group.create_task(service.run())
            await stop.wait()
            serving.cancel()

    asyncio.run(main())
    typer.echo(json.dumps(dict(sorted(service.counters.items()))))


def with_overrides(scenario: Scenario, faults: list[str], seed: int | None) -> Scenario:
    """The scenario with `--fault NAME=VALUE` applied to every class, and `--seed`."""
    changes: dict[str, str] = {}
    for item in faults:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in Faults.model_fields:
            raise ScenarioError(f"--fault {item!r}: expected NAME=VALUE with NAME one of "
                                f"{', '.join(Faults.model_fields)}")
        changes[name] = value.strip()
    data = scenario.model_dump()
    if changes:
        data["faults"].update(changes)
        for cls in [*data["sensors"], *data["panels"]]:
            if cls["faults"] is not None:
                cls["faults"].update(changes)
    if seed is not None:
        data["seed"] = seed
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"--fault/--seed: {exc}") from exc


def raise_nofile(wanted: int) -> None:
    """One socket per device: raise the soft RLIMIT_NOFILE towards `wanted` (up to hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
