"""Run a scenario's fleet in one asyncio process and measure it.

Panel -> actuator latency. A text command cannot carry its send time, so the fleet pairs it by
order through the gateway's own records: a monitor client subscribes `decisions/{panel}` for
every panel. The gateway handles one device's commands in order (one pipeline, FIFO
micro-batches, one bus) and publishes exactly one Decision per recognised command, so the n-th
Decision on `decisions/{panel}` belongs to the panel's n-th accepted command: its send time is
popped from that panel's FIFO (a command the gateway refused is removed from the FIFO at once, as
a panel has one command in flight at a time). The Decision's `seq` is then mapped to that send
time, and every `ActuatorCommand` with that `decision_seq` gives one latency sample: actuator
arrival - panel send (both time.monotonic()). An actuator command may arrive before its Decision
(the gateway publishes actions first): it waits in `pending` until the Decision comes; those
still unmatched at the end came from sensor rules or occupancy (`commands_not_from_panels`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gateway.mqttsn.constants import TopicIdType
from schemas.decisions import ActuatorCommand, Decision
from schemas.scenario import PanelClass, Scenario, SensorClass
from sensor_sim.coap_client import CoapClient
from sensor_sim.generators import ROOMS, RoomModel
from sensor_sim.mqttsn_client import MqttSnClient
from sensor_sim.payloads import CONTENT_FORMATS, encode_telemetry
from sensor_sim.report import Stats

SETUP_CONCURRENCY = 200


@dataclass
class Target:
    host: str
    mqttsn_port: int
    coap_port: int


@dataclass
class Device:
    cls: SensorClass | PanelClass
    device_id: str
    rate: float
    index: int


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


def plan(scenario: Scenario, devices: int | None, rate: float | None) -> list[Device]:
    """The devices to run: `devices` scales the sensor classes, `rate` is their total rate."""
    sensor_counts = [cls.count for cls in scenario.sensors]
    if devices is not None:
        sensor_counts = scale_counts(sensor_counts, devices)
    total_sensors = sum(sensor_counts)
    out: list[Device] = []
    index = 0
    for cls, count in zip(scenario.sensors, sensor_counts, strict=True):
        for device_id in cls.device_ids(count):
            per_device = cls.rate if rate is None or total_sensors == 0 else rate / total_sensors
            out.append(Device(cls, device_id, per_device, index))
            index += 1
    for panel in scenario.panels:
        for device_id in panel.device_ids():
            out.append(Device(panel, device_id, panel.rate, index))
            index += 1
    return out


@dataclass
class PanelTracker:
    """Pairs panel sends, decisions and actuator commands (see the module docstring)."""

    stats: Stats
    actuators: set[str]
    sends: dict[str, deque[float]] = field(default_factory=dict)
    seq_sent: dict[int, float] = field(default_factory=dict)
    pending: dict[int, list[float]] = field(default_factory=dict)
    seen: set[tuple[str, int | None, float]] = field(default_factory=set)

    def sent(self, panel: str, at: float) -> None:
        self.sends.setdefault(panel, deque()).append(at)

    def refused(self, panel: str) -> None:
        queue = self.sends.get(panel)
        if queue:
            queue.pop()

    def decision(self, payload: bytes) -> None:
        try:
            decision = Decision.model_validate_json(payload)
        except ValidationError:
            self.stats.errors["bad_decision_payload"] += 1
            return
        queue = self.sends.get(decision.device_id)
        if not queue:
            self.stats.errors["decision_without_command"] += 1
            return
        sent_at = queue.popleft()
        self.stats.panel_decisions += 1
        self.stats.panel_actions += sum(a.actuator_id in self.actuators for a in decision.actions)
        self.seq_sent[decision.seq] = sent_at
        for arrived in self.pending.pop(decision.seq, []):
            self.stats.panel_latency_ms.append((arrived - sent_at) * 1000)

    def command(self, actuator: str, payload: bytes, arrived: float) -> None:
        try:
            command = ActuatorCommand.model_validate_json(payload)
        except ValidationError:
            self.stats.errors["bad_actuator_command"] += 1
            return
        key = (actuator, command.decision_seq, command.issued_at)
        if key in self.seen:
            self.stats.commands_duplicated += 1
            return
        self.seen.add(key)
        if command.actuator_id != actuator:
            self.stats.errors["command_for_other_actuator"] += 1
        self.stats.commands_by_actuator[actuator] += 1
        seq = command.decision_seq
        if seq is not None and seq in self.seq_sent:
            self.stats.panel_latency_ms.append((arrived - self.seq_sent[seq]) * 1000)
        elif seq is not None:
            self.pending.setdefault(seq, []).append(arrived)
        else:
            self.stats.commands_other += 1

    def unresolved(self) -> int:
        return sum(len(q) for q in self.sends.values())

    def finish(self) -> None:
        self.stats.commands_other += sum(len(v) for v in self.pending.values())
        self.pending.clear()
        self.stats.panel_commands_unanswered = self.unresolved()


class Fleet:
    def __init__(self, scenario: Scenario, target: Target, *, duration: float,
                 devices: int | None = None, rate: float | None = None) -> None:
        self.scenario = scenario
        self.target = target
        self.duration = duration
        self.devices = plan(scenario, devices, rate)
        self.stats = Stats()
        self.actuator_ids = [a for cls in scenario.actuators for a in cls.ids]
        self.tracker = PanelTracker(self.stats, set(self.actuator_ids))
        self.offered_rate = sum(d.rate for d in self.devices)
        self._clients: list[MqttSnClient | CoapClient] = []
        self._deadline = 0.0
        self.elapsed = 0.0
        self._run_start = 0.0
        self._set_up = 0

    # --- building clients -------------------------------------------------------------------

    def _mqttsn(self, client_id: str, on_message: Any = None) -> MqttSnClient:
        timing = self.scenario.timing
        client = MqttSnClient(
            client_id, (self.target.host, self.target.mqttsn_port), retry=timing.mqttsn_retry,
            retries=timing.mqttsn_retries, keep_alive=timing.keep_alive,
            errors=self.stats.errors, on_message=on_message,
        )
        self._clients.append(client)
        return client

    def _coap(self, rng: random.Random) -> CoapClient:
        timing = self.scenario.timing
        client = CoapClient(
            (self.target.host, self.target.coap_port), ack_timeout=timing.coap_ack_timeout,
            max_retransmit=timing.coap_max_retransmit, errors=self.stats.errors, rng=rng,
        )
        self._clients.append(client)
        return client

    async def _subscribers(self) -> list[MqttSnClient]:
        out: list[MqttSnClient] = []
        for cls in self.scenario.actuators:
            for actuator in cls.ids:
                def record(topic: str, payload: bytes, at: float, actuator: str = actuator) -> None:
                    self.tracker.command(actuator, payload, at)
                client = self._mqttsn(f"sim-act-{actuator}"[:64], record)
                await client.open()
                await client.connect()
                await client.subscribe(f"actuators/{actuator}/set", cls.qos)
                out.append(client)
        panels = [d.device_id for d in self.devices if isinstance(d.cls, PanelClass)]
        if panels:
            def decision(topic: str, payload: bytes, at: float) -> None:
                self.tracker.decision(payload)
            monitor = self._mqttsn("sim-monitor", decision)
            await monitor.open()
            await monitor.connect()
            for panel in panels:
                await monitor.subscribe(f"decisions/{panel}", 1)
            out.append(monitor)
        return out

    # --- device loops -----------------------------------------------------------------------

    async def _device(  # noqa: PLR0915 (setup and loop read best together)
        self, device: Device, ready: asyncio.Event, gate: asyncio.Semaphore
    ) -> None:
        cls = device.cls
        is_panel = isinstance(cls, PanelClass)
        rng = random.Random(f"{self.scenario.seed}:{device.device_id}")
        counts = self.stats.counts(cls.name)
        protocol = cls.protocol
        topic = f"devices/{device.device_id}/{'command' if is_panel else 'telemetry'}"
        send: Any
        async with gate:
            try:
                if protocol.startswith("coap"):
                    coap = self._coap(rng)
                    await coap.open()
                    confirmable = protocol == "coap-con"

                    async def send(payload: bytes, fmt: int) -> str:
                        return await coap.post(topic, payload, fmt, confirmable, counts)
                else:
                    qos = int(protocol.removeprefix("mqttsn-qos"))
                    mqttsn = self._mqttsn(device.device_id)
                    await mqttsn.open()
                    if qos == -1:
                        assert cls.predefined_topic_id is not None
                        topic_id, id_type = cls.predefined_topic_id, TopicIdType.PREDEFINED
                    else:
                        await mqttsn.connect()
                        topic_id, id_type = await mqttsn.register(topic), TopicIdType.NORMAL

                    async def send(payload: bytes, fmt: int) -> str:
                        return await mqttsn.publish(topic_id, payload, qos, counts, id_type)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.stats.errors[f"setup_{type(exc).__name__}"] += 1
                return
            finally:
                self._set_up += 1
        await ready.wait()
        loop = asyncio.get_running_loop()
        interval = 1.0 / device.rate
        next_at = loop.time() + rng.uniform(0, interval)
        room = (cls.room if isinstance(cls, SensorClass) and cls.room
                else ROOMS[device.index % len(ROOMS)])
        model = RoomModel(self.scenario.seed * 100_003 + device.index, room,
                          cls.battery_days if isinstance(cls, SensorClass) else 365.0)
        said = rng.randrange(len(cls.utterances)) if isinstance(cls, PanelClass) else 0
        while next_at < self._deadline:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if isinstance(cls, PanelClass):
                text = cls.utterances[said % len(cls.utterances)]
                said += 1
                self.tracker.sent(device.device_id, time.monotonic())
                started = time.monotonic()
                outcome = await send(text.encode(), 0)
                if outcome == "rejected":
                    self.tracker.refused(device.device_id)
            else:
                sim_t = (self.scenario.start_hour * 3600
                         + (loop.time() - self._run_start) * self.scenario.time_scale)
                values = model.sample(sim_t)
                payload = encode_telemetry(cls.payload, device.device_id,
                                           {q: values[q] for q in cls.quantities}, time.time())
                started = time.monotonic()
                outcome = await send(payload, CONTENT_FORMATS[cls.payload])
            if outcome == "acked":
                self.stats.ack_rtt_ms.append((time.monotonic() - started) * 1000)
            next_at += interval * (1 + cls.jitter * rng.uniform(-1, 1))
            next_at = max(next_at, loop.time())

    async def _pinger(self, clients: list[MqttSnClient]) -> None:
        period = self.scenario.timing.keep_alive / 2
        while True:
            await asyncio.sleep(period)
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.ping()

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            subscribers = await self._subscribers()
            ready = asyncio.Event()
            gate = asyncio.Semaphore(SETUP_CONCURRENCY)
            self._deadline = float("inf")
            tasks = [asyncio.create_task(self._device(d, ready, gate)) for d in self.devices]
            # Wait for every device to be connected (or failed) before the clock starts.
            while self._set_up < len(tasks):  # noqa: ASYNC110 (no event per device)
                await asyncio.sleep(0.01)
            self._run_start = loop.time()
            self._deadline = self._run_start + self.duration
            ready.set()
            pinger = asyncio.create_task(self._pinger(subscribers))
            await asyncio.gather(*tasks, return_exceptions=False)
            self.elapsed = loop.time() - self._run_start
            drain_until = loop.time() + self.scenario.timing.drain
            while loop.time() < drain_until and (  # noqa: ASYNC110
                self.tracker.unresolved() or self.tracker.pending
            ):
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)  # last actuator commands after the last decision
            pinger.cancel()
        finally:
            for client in self._clients:
                if isinstance(client, MqttSnClient):
                    client.disconnect()
                client.close()
        self.stats.duplicate_answers = sum(c.duplicate_answers for c in self._clients)
        self.tracker.finish()
        return self.stats.report(
            scenario=self.scenario.name, devices=len(self.devices), duration=self.duration,
            elapsed=self.elapsed, offered_rate=self.offered_rate,
        )


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"

