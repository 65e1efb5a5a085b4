"""The cloud supervisor: heartbeats drive the failover state machine; mode changes go out.

`CloudSupervisor.run` (TaskGroup-owned) sends a heartbeat every ``heartbeat_interval`` seconds;
one not answered within the interval, not sendable (broker down) or answered with a refusal
is a miss. The policy
reports escalated requests through `record`. A mode change is logged (``cloud_mode_changed``)
and published retained on ``{mountpoint}gateway/status`` as a `schemas.GatewayStatus`
("degraded" or "online", with the reason) through the link, which re-publishes the latest
status after every reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

import structlog

from gateway.recognizer.cloud import CloudClient, CloudLink, CloudUnavailable
from gateway.recognizer.failover import Failover, Mode, ModeChange, Probe
from schemas import GatewayStatus
from schemas.cloud import CloudConfig

__all__ = ["CloudSupervisor"]

log = structlog.get_logger(__name__)


class CloudSupervisor:
    """Owns the failover state: heartbeats, request outcomes, status publication."""

    def __init__(
        self,
        client: CloudClient,
        failover: Failover,
        *,
        interval: float,
        site: str,
        publish_status: Callable[[bytes], None],
        clock: Callable[[], float] = time.monotonic,
        shed_when_degraded: Iterable[str] = (),
    ) -> None:
        self.client = client
        self.failover = failover
        self._shed = frozenset(shed_when_degraded)
        self._interval = interval
        self._site = site
        self._publish_status = publish_status
        self._clock = clock

    @classmethod
    def create(
        cls, config: CloudConfig, link: CloudLink, *, gateway_id: str, site: str,
        response_topic: str,
    ) -> CloudSupervisor:
        """The client and an ONLINE failover (the first heartbeats confirm or refute it)."""
        client = CloudClient(link, config, gateway_id=gateway_id, response_topic=response_topic)
        failover = Failover(
            misses_to_degrade=config.misses_to_degrade,
            successes_to_recover=config.successes_to_recover,
            now=time.monotonic(),
        )
        return cls(client, failover, interval=config.heartbeat_interval, site=site,
                   publish_status=link.set_status,
                   shed_when_degraded=config.shed_when_degraded)

    @property
    def online(self) -> bool:
        return self.failover.online

    def sheds(self, work: str) -> bool:
        """Whether non-core `work` is stopped now (DEGRADED and EGW_CLOUD__SHED_WHEN_DEGRADED
        names it)."""
        return work in self._shed and not self.failover.online

    @property
    def mode(self) -> str:
        """The mode, "online" or "degraded" (for metrics and health)."""
        return self.failover.mode.value

    def mode_seconds(self) -> Mapping[str, float]:
        """Seconds spent in each mode so far, the current stretch included."""
        return self.failover.seconds_in_mode(self._clock())

    def record(self, ok: bool, probe: Probe, reason: str = "") -> None:
        """One heartbeat or request outcome; a miss needs its ``reason``."""
        now = self._clock()
        change = (self.failover.success(now, probe) if ok
                  else self.failover.miss(now, probe, reason))
        if change is not None:
            self._changed(change)

    async def run(self) -> None:
        """Heartbeat loop until cancelled."""
        try:
            while True:
                started = self._clock()
                await self._heartbeat()
                await asyncio.sleep(max(0.0, self._interval - (self._clock() - started)))
        finally:
            self.client.close()

    async def _heartbeat(self) -> None:
        try:
            reply = self.client.ping()
        except CloudUnavailable as exc:
            self.record(False, "heartbeat", exc.reason)
            return
        try:
            async with asyncio.timeout(self._interval):
                await reply
        except TimeoutError:
            self.record(False, "heartbeat", "timeout")
        except CloudUnavailable as exc:
            self.record(False, "heartbeat", exc.reason)
        else:
            self.record(True, "heartbeat")

    def _changed(self, change: ModeChange) -> None:
        emit = log.info if change.mode is Mode.ONLINE else log.warning
        emit(
            "cloud_mode_changed", mode=change.mode.value, previous=change.previous.value,
            reason=change.reason, cloud_model=self.client.version,
        )
        status = GatewayStatus(
            state=change.mode.value, site=self._site, reason=change.reason, time=time.time()
        )
        self._publish_status(status.model_dump_json().encode())
