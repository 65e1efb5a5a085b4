"""One simulated sensor or panel: connect, then report at its rate until the deadline.

Besides reporting, a device's loop wakes for reboot storms (it reconnects from a new socket),
for keep-alive PINGREQs when it reports less often than half its keep-alive, and, for a sleeping
MQTT-SN device, wraps each report in CONNECT (clean_session=false) ... DISCONNECT(duration);
when it oversleeps it stays away for `oversleep_factor` times its declared duration, skipping
the reports in between. Setup and reconnection failures are counted in `errors`; a message is
only counted as `sent` once it is actually sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from schemas.scenario import Faults, PanelClass, Scenario, SensorClass
from sensor_sim.coap_client import CoapClient
from sensor_sim.faults import FaultInjector, fault_rng, garbage, reboots_in_storm
from sensor_sim.generators import ROOMS, RoomModel
from sensor_sim.mqttsn_client import MqttSnClient, MqttSnTimeout
from sensor_sim.payloads import CONTENT_FORMATS, encode_telemetry
from sensor_sim.report import Stats
from sensor_sim.tracker import PanelTracker

CONNECT_FAILURES = (OSError, ConnectionError, MqttSnTimeout)


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


@dataclass
class Site:
    """What every device of one fleet shares."""

    scenario: Scenario
    target: Target
    stats: Stats
    tracker: PanelTracker


class SimDevice:
    def __init__(self, device: Device, site: Site) -> None:
        self.device = device
        self.site = site
        cls = device.cls
        scenario = site.scenario
        self.is_panel = isinstance(cls, PanelClass)
        self.faults: Faults = cls.faults or scenario.faults
        self.rng = random.Random(f"{scenario.seed}:{device.device_id}")
        # Garbage and oversleeping draw from their own stream, made only when needed.
        self.fault_rng = (fault_rng(scenario.seed, device.device_id, "device")
                          if self.faults.garbage or self.faults.oversleep else self.rng)
        self.counts = site.stats.counts(cls.name)
        self.topic = f"devices/{device.device_id}/{'command' if self.is_panel else 'telemetry'}"
        self.sleep_duration = cls.sleep_duration if isinstance(cls, SensorClass) else None
        self.opened = False  # the socket is open (a device without one stops)
        self.connected = False
        self.loop = asyncio.get_running_loop()
        self.last_tx = 0.0  # loop time of the last datagram that keeps the session alive
        injector = None
        if self.faults.datagram_faults:
            injector = FaultInjector(
                self.faults, fault_rng(scenario.seed, device.device_id, "datagrams"),
                self.loop.call_later, site.stats.faults,
            )
        timing = scenario.timing
        errors = site.stats.errors
        self.client: MqttSnClient | CoapClient
        if cls.protocol.startswith("coap"):
            self.client = CoapClient(
                (site.target.host, site.target.coap_port), ack_timeout=timing.coap_ack_timeout,
                max_retransmit=timing.coap_max_retransmit, errors=errors, rng=self.rng,
                injector=injector,
            )
            self.qos = 1 if cls.protocol == "coap-con" else 0
        else:
            self.client = MqttSnClient(
                device.device_id, (site.target.host, site.target.mqttsn_port),
                retry=timing.mqttsn_retry, retries=timing.mqttsn_retries,
                keep_alive=timing.keep_alive, errors=errors, injector=injector,
            )
            self.qos = int(cls.protocol.removeprefix("mqttsn-qos"))

    # --- connection -------------------------------------------------------------------------

    async def setup(self) -> bool:
        """Open the socket and connect; False (counted in errors) when that failed."""
        try:
            await self.client.open()
        except OSError as exc:  # e.g. out of file descriptors: this device never runs
            self.site.stats.errors[f"setup_{type(exc).__name__}"] += 1
            return False
        self.opened = True
        return await self._connect("setup")

    async def _connect(self, phase: str) -> bool:
        client = self.client
        try:
            if isinstance(client, MqttSnClient) and self.qos >= 0:
                await client.connect(clean=True)
                await client.register(self.topic)
                if self.sleep_duration is not None:
                    await client.sleep(self.sleep_duration)
        except CONNECT_FAILURES as exc:
            self.site.stats.errors[f"{phase}_{type(exc).__name__}"] += 1
            self.connected = False
            return False
        self.connected = True
        self.last_tx = self.loop.time()
        return True

    async def reboot(self) -> None:
        self.site.stats.faults.reboots += 1
        try:
            await self.client.reopen()
        except OSError as exc:
            self.site.stats.errors[f"reboot_{type(exc).__name__}"] += 1
            self.opened = False
            return
        await self._connect("reboot")

    def close(self) -> None:
        if isinstance(self.client, MqttSnClient) and self.qos >= 0:
            self.client.disconnect()  # a sleeper too: its session ends rather than times out
        self.client.close()

    # --- sending ----------------------------------------------------------------------------

    async def _send(self, payload: bytes, content_format: int) -> str | None:
        """Send one message; its outcome, or None when the device could not connect first."""
        client = self.client
        if isinstance(client, MqttSnClient) and client.disconnected_by_gateway:
            self.connected = False
        if not self.connected and not await self._connect("reconnect"):
            return None
        if self.faults.garbage and self.fault_rng.random() < self.faults.garbage:
            self.site.stats.faults.garbage += 1
            client.endpoint.send_raw(garbage(self.fault_rng))
        self.last_tx = self.loop.time()
        if isinstance(client, CoapClient):
            return await client.post(self.topic, payload, content_format, self.qos == 1,
                                     self.counts)
        if self.qos == -1:
            predefined = self.device.cls.predefined_topic_id
            assert predefined is not None
            return await client.publish(predefined, payload, -1, self.counts)
        if self.sleep_duration is None:
            return await client.publish(self.topic, payload, self.qos, self.counts)
        try:
            await client.connect(clean=False)  # awake: ACTIVE again with the same session
        except CONNECT_FAILURES as exc:
            self.site.stats.errors[f"wake_{type(exc).__name__}"] += 1
            return None
        outcome = await client.publish(self.topic, payload, self.qos, self.counts)
        try:
            await client.sleep(self.sleep_duration)
        except MqttSnTimeout:
            self.site.stats.errors["sleep_MqttSnTimeout"] += 1
        return outcome

    def _oversleeps(self) -> bool:
        return (self.sleep_duration is not None and self.faults.oversleep > 0
                and self.fault_rng.random() < self.faults.oversleep)

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, start: float, deadline: float) -> None:
        """Report from `start` (loop time) until `deadline`."""
        loop = self.loop
        device, cls = self.device, self.device.cls
        scenario = self.site.scenario
        interval = 1.0 / device.rate
        next_at = loop.time() + self.rng.uniform(0, interval)
        storm_every = self.faults.reboot_interval if self.faults.reboot_fraction > 0 else 0.0
        storm = 1
        next_storm = start + storm_every if storm_every else float("inf")
        ping_every = self._ping_period(interval)
        room = (cls.room if isinstance(cls, SensorClass) and cls.room
                else ROOMS[device.index % len(ROOMS)])
        model = RoomModel(scenario.seed * 100_003 + device.index, room,
                          cls.battery_days if isinstance(cls, SensorClass) else 365.0,
                          rng=self.rng)
        said = self.rng.randrange(len(cls.utterances)) if isinstance(cls, PanelClass) else 0
        while self.opened:
            wake = min(next_at, next_storm, self.last_tx + ping_every)
            if wake >= deadline:
                return
            await asyncio.sleep(max(0.0, wake - loop.time()))
            if wake == next_storm:
                if reboots_in_storm(scenario.seed, storm, device.device_id,
                                    self.faults.reboot_fraction):
                    await self.reboot()
                storm += 1
                next_storm = start + storm * storm_every
                continue
            if wake != next_at:
                await self._ping()
                continue
            if isinstance(cls, PanelClass):
                text = cls.utterances[said % len(cls.utterances)]
                said += 1
                await self._report(text.encode(), 0, panel=True)
            else:
                sim_t = scenario.start_hour * 3600 + (loop.time() - start) * scenario.time_scale
                values = model.sample(sim_t, cls.quantities)
                payload = encode_telemetry(cls.payload, device.device_id, values, time.time())
                await self._report(payload, CONTENT_FORMATS[cls.payload], panel=False)
            next_at += interval * (1 + cls.jitter * self.rng.uniform(-1, 1))
            if self._oversleeps():
                self.site.stats.faults.oversleeps += 1
                assert self.sleep_duration is not None
                next_at = loop.time() + self.faults.oversleep_factor * self.sleep_duration
            next_at = max(next_at, loop.time())

    async def _report(self, payload: bytes, content_format: int, *, panel: bool) -> None:
        tracker = self.site.tracker
        started = time.monotonic()
        if panel:
            tracker.sent(self.device.device_id, started, payload.decode())
        outcome = await self._send(payload, content_format)
        if outcome == "acked":
            self.site.stats.ack_rtt_ms.append((time.monotonic() - started) * 1000)
        elif panel and outcome in (None, "rejected", "lost"):
            tracker.refused(self.device.device_id)

    def _ping_period(self, interval: float) -> float:
        """Seconds of silence after which the device pings (inf when its reports suffice)."""
        keep_alive = self.site.scenario.timing.keep_alive
        if (not isinstance(self.client, MqttSnClient) or self.qos < 0
                or self.sleep_duration is not None or interval * 2 < keep_alive):
            return float("inf")
        return keep_alive / 2

    async def _ping(self) -> None:
        assert isinstance(self.client, MqttSnClient)
        self.last_tx = self.loop.time()
        try:
            await self.client.ping()
        except MqttSnTimeout:
            self.site.stats.errors["ping_MqttSnTimeout"] += 1
            self.connected = False

