"""Run a scenario's fleet (or one shard of it) in one asyncio process and measure it.

The run: the actuators subscribe (MQTT-SN) or observe (CoAP), a monitor client subscribes to
every panel's decisions (sensor_sim.tracker pairs them), an optional upstream watcher connects
to the broker, then every device connects (at most SETUP_CONCURRENCY at a time) before the
clock starts; the devices report until `duration` has passed, and the fleet waits up to
`timing.drain` seconds for the panels' last decisions and commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from schemas.scenario import PanelClass, Scenario
from sensor_sim.coap_client import CoapClient
from sensor_sim.device import Device, SimDevice, Site, Target
from sensor_sim.mqttsn_client import MqttSnClient
from sensor_sim.report import Stats
from sensor_sim.tracker import PanelTracker
from sensor_sim.upstream import UpstreamWatcher

__all__ = ["Device", "Fleet", "Target", "dumps", "plan", "scale_counts"]

SETUP_CONCURRENCY = 200
SETTLE = 0.05  # the last actuator commands may follow the last decision by a moment


def scale_counts(counts: list[int], total: int) -> list[int]:
    """Spread `total` devices over classes in proportion to `counts` (largest remainder)."""
    base = sum(counts)
    if base == 0:
        return [0] * len(counts)
    exact = [c * total / base for c in counts]
    out = [int(x) for x in exact]
    order = sorted(range(len(counts)), key=lambda i: exact[i] - out[i], reverse=True)
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def plan(scenario: Scenario, devices: int | None, rate: float | None,
         shard: tuple[int, int] = (0, 1)) -> list[Device]:
    """The devices to run: `devices` scales the sensor classes, `rate` is their total rate.

    With `shard` (i, n) only the sensors whose index is i modulo n; panels go to shard 0.
    """
    sensor_counts = [cls.count for cls in scenario.sensors]
    if devices is not None:
        sensor_counts = scale_counts(sensor_counts, devices)
    total_sensors = sum(sensor_counts)
    out: list[Device] = []
    index = 0
    this, shards = shard
    for cls, count in zip(scenario.sensors, sensor_counts, strict=True):
        for device_id in cls.device_ids(count):
            per_device = cls.rate if rate is None or total_sensors == 0 else rate / total_sensors
            if index % shards == this:
                out.append(Device(cls, device_id, per_device, index))
            index += 1
    for panel in scenario.panels:
        for device_id in panel.device_ids():
            if this == 0:
                out.append(Device(panel, device_id, panel.rate, index))
            index += 1
    return out


class Fleet:
    def __init__(self, scenario: Scenario, target: Target, *, duration: float,
                 devices: int | None = None, rate: float | None = None,
                 broker: str = "", mountpoint: str = "edge/site1/",
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.scenario = scenario
        self.target = target
        self.duration = duration
        self.broker = broker if shard[0] == 0 else ""
        self.mountpoint = mountpoint
        self.main_shard = shard[0] == 0
        self.devices = plan(scenario, devices, rate, shard)
        self.stats = Stats()
        self.actuator_ids = [a for cls in scenario.actuators for a in cls.ids]
        self.tracker = PanelTracker(self.stats, set(self.actuator_ids))
        self.offered_rate = sum(d.rate for d in self.devices)
        self.phase = "setup"
        self.set_up = 0
        self.elapsed = 0.0
        self._sims: list[SimDevice] = []
        self._helpers: list[MqttSnClient | CoapClient] = []
        self._start = 0.0
        self._device_tasks: list[asyncio.Task[None]] = []
        self.stopped = False

    # --- helpers: actuators, the decision monitor -------------------------------------------

    def _mqttsn(self, client_id: str, on_message: Any) -> MqttSnClient:
        timing = self.scenario.timing
        client = MqttSnClient(
            client_id, (self.target.host, self.target.mqttsn_port), retry=timing.mqttsn_retry,
            retries=timing.mqttsn_retries, keep_alive=timing.keep_alive,
            errors=self.stats.errors, on_message=on_message,
        )
        self._helpers.append(client)
        return client

    def _recorder(self, actuator: str) -> Callable[[bytes, float], None]:
        def record(payload: bytes, at: float) -> None:
            self.tracker.command(actuator, payload, at)
        return record

    async def _actuators(self) -> list[MqttSnClient]:
        """Subscribe or observe every actuator; the MQTT-SN clients (they need pings)."""
        out: list[MqttSnClient] = []
        timing = self.scenario.timing
        for cls in self.scenario.actuators:
            for actuator in cls.ids:
                record = self._recorder(actuator)
                if cls.protocol == "coap":
                    observer = CoapClient(
                        (self.target.host, self.target.coap_port),
                        ack_timeout=timing.coap_ack_timeout,
                        max_retransmit=timing.coap_max_retransmit, errors=self.stats.errors,
                        rng=random.Random(f"{self.scenario.seed}:{actuator}"),
                    )
                    self._helpers.append(observer)
                    await observer.open()
                    await observer.observe(f"actuators/{actuator}/set", record)
                    continue
                client = self._mqttsn(f"sim-act-{actuator}"[:64],
                                      lambda _t, p, at, record=record: record(p, at))
                await client.open()
                await client.connect()
                await client.subscribe(f"actuators/{actuator}/set", cls.qos)
                out.append(client)
        panels = [d.device_id for d in self.devices if isinstance(d.cls, PanelClass)]
        if panels:
            monitor = self._mqttsn("sim-monitor",
                                   lambda _t, p, _at: self.tracker.decision(p))
            await monitor.open()
            await monitor.connect()
            for panel in panels:
                await monitor.subscribe(f"decisions/{panel}", 1)
            out.append(monitor)
        return out

    async def _pinger(self, clients: list[MqttSnClient]) -> None:
        period = self.scenario.timing.keep_alive / 2
        while True:
            await asyncio.sleep(period)
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.ping()

    # --- devices ----------------------------------------------------------------------------

    async def _setup(self, sim: SimDevice, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                await sim.setup()
            finally:
                self.set_up += 1

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.scenario.timing.drain
        while loop.time() < until and (  # noqa: ASYNC110 (polls two conditions)
            self.tracker.unresolved() or self.tracker.pending
        ):
            await asyncio.sleep(0.02)
        await asyncio.sleep(SETTLE)

    async def run(self) -> dict[str, Any]:
        """Run the fleet; the report."""
        await self.measure()
        return self.report()

    async def measure(self, started: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run the fleet and settle `stats`. `started` is awaited (if given) once every
        device is set up, just before the clock starts (workers use it to start together)."""
        loop = asyncio.get_running_loop()
        watcher = None
        if self.broker:
            self.stats.upstream = Counter()
            watcher = UpstreamWatcher(self.broker, self.mountpoint, self.stats.upstream)
        try:
            async with asyncio.TaskGroup() as tg:
                if watcher is not None:
                    await watcher.start()
                helpers = await self._actuators()
                self._sims = [SimDevice(d, Site(self.scenario, self.target, self.stats,
                                                self.tracker)) for d in self.devices]
                gate = asyncio.Semaphore(SETUP_CONCURRENCY)
                async with asyncio.TaskGroup() as setup:
                    for sim in self._sims:
                        setup.create_task(self._setup(sim, gate))
                if started is not None:
                    await started()
                self.phase = "running"
                self._start = loop.time()
                deadline = self._start + self.duration
                pinger = tg.create_task(self._pinger(helpers))
                async with asyncio.TaskGroup() as devices:
                    self._device_tasks = [devices.create_task(sim.run(self._start, deadline))
                                          for sim in self._sims]
                    if self.stopped:
                        self.stop()
                self.elapsed = loop.time() - self._start
                self.phase = "draining"
                await self._drain()
                pinger.cancel()
        finally:
            self.phase = "done"
            for sim in self._sims:
                sim.close()
            for helper in self._helpers:
                if isinstance(helper, MqttSnClient):
                    helper.disconnect()
                helper.close()
            if watcher is not None:
                await watcher.stop()
        self._settle()

    def stop(self) -> None:
        """End the run now (Ctrl-C): messages in flight stay `pending`, the report follows."""
        self.stopped = True
        for task in self._device_tasks:
            task.cancel()

    def running_for(self) -> float:
        """Seconds since the clock started (0 during setup)."""
        if self.phase == "setup":
            return 0.0
        if self.phase == "running":
            return asyncio.get_running_loop().time() - self._start
        return self.elapsed

    def _settle(self) -> None:
        clients = [*(s.client for s in self._sims), *self._helpers]
        self.stats.duplicate_answers = sum(c.duplicate_answers for c in clients) + sum(
            c.duplicate_notifications for c in clients if isinstance(c, CoapClient))
        if self.stats.upstream is not None and self.stats.upstream["disconnects"]:
            self.stats.errors["upstream_disconnected"] += self.stats.upstream["disconnects"]
        self.tracker.finish()

    def report(self) -> dict[str, Any]:
        return self.stats.report(
            scenario=self.scenario.name, devices=len(self.devices), duration=self.duration,
            elapsed=self.elapsed, offered_rate=self.offered_rate,
        )


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"
