"""`edge-gateway demo`: the gateway on embedded defaults plus the smart-home fleet, for a while.

Everything runs in this process on loopback and ephemeral ports, with a temporary data dir: a
newcomer sees sensors, text commands, intents and actuator commands flow (the simulator's live
view, when standard output is a terminal), then the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway.app import Gateway
from gateway.config import Settings
from sensor_sim.fleet import Fleet, Target
from sensor_sim.live import LiveView
from sensor_sim.runner import run_fleet
from sensor_sim.scenario import load_scenario

DEMO_SCENARIO = "smart-home"


def demo_settings(data_dir: Path, broker_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        mqttsn={"host": "127.0.0.1", "port": 0},
        coap={"host": "127.0.0.1", "port": 0},
        http={"host": "127.0.0.1", "port": 0},
        broker={"url": broker_url},
        log={"level": "warning", "format": "console"},
    )


async def run_demo(duration: float, broker_url: str = "",
                   live: bool | None = None) -> dict[str, Any]:
    """Run the gateway and the fleet for `duration` seconds; the fleet's report.

    `live`: show the simulator's live view (default: when standard output is a terminal).
    """
    console = Console()
    if live is None:
        live = console.is_terminal
    with contextlib.ExitStack() as stack:
        view = stack.enter_context(LiveView(console)) if live else None
        return await _run(duration, broker_url, view)


async def _run(duration: float, broker_url: str, view: LiveView | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="egw-demo-") as data_dir:
        gateway = Gateway(demo_settings(Path(data_dir), broker_url))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(gateway.run(), name="gateway")
            try:
                await gateway.ready.wait()
                mqttsn = gateway.mqttsn_address
                coap = None if gateway.coap is None else gateway.coap.address
                assert mqttsn is not None and coap is not None
                target = Target("127.0.0.1", mqttsn[1], coap[1])
                fleet = Fleet(load_scenario(DEMO_SCENARIO), target, duration=duration)
                return await run_fleet(fleet, view)
            finally:
                gateway.stop()
