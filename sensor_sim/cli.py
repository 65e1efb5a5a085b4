"""`sensor-sim`: run a simulated fleet against a gateway and write the report.

    sensor-sim run smart-home --host 127.0.0.1 --mqttsn-port 1884 --coap-port 5683 \
        --duration 30 --report report.json
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sensor_sim.fleet import Fleet, Target, dumps
from sensor_sim.scenario import ScenarioError, load_scenario, shipped_scenarios

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
    broker: Annotated[str, typer.Option(help="Broker URL (not used yet).")] = "",
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of sending.")] = 30.0,
    devices: Annotated[int | None, typer.Option(min=0, help="Total sensors (scaled).")] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Total sensor msg/s.")] = None,
) -> None:
    """Run SCENARIO for DURATION seconds and write the report."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if broker:
        typer.echo("note: --broker is accepted but not used by this version", err=True)
    fleet = Fleet(loaded, Target(host, mqttsn_port, coap_port), duration=duration,
                  devices=devices, rate=rate)
    result = asyncio.run(fleet.run())
    report.write_text(dumps(result), encoding="utf-8")
    Console().print(summary_table(result))


def summary_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"sensor-sim {result['scenario']}: {result['devices']} devices")
    table.add_column("class")
    for column in ("sent", "acked", "rejected", "lost", "unconfirmed", "pending", "retransmitted"):
        table.add_column(column, justify="right")
    for name, counts in result["by_class"].items():
        table.add_row(name, *(str(counts[c]) for c in ("sent", "acked", "rejected", "lost",
                                                      "unconfirmed", "pending", "retransmitted")))
    lat = result["latency_ms"]
    table.caption = (
        f"rate offered {result['offered_rate']}/s achieved {result['achieved_rate']}/s · "
        f"commands received {result['commands_received']} · panel→actuator ms "
        f"p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']} · "
        f"errors {result['errors'] or 'none'}"
    )
    return table
