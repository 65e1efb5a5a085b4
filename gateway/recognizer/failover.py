"""The cloud failover state machine: ONLINE <-> DEGRADED, pure (the caller passes ``now``).

Every heartbeat and every escalated request ends in a *success* (answered in time) or a *miss*
(no answer within its deadline, or it could not be sent: broker down). ``misses_to_degrade``
consecutive misses switch ONLINE to DEGRADED; only ``successes_to_recover`` consecutive answered
*heartbeats* switch back (requests are not sent while DEGRADED). Any miss restarts the count of
successes and any success restarts the count of misses, so a link that drops every other
heartbeat keeps whatever mode it is in instead of flapping.

``now`` is any monotonic clock in seconds (the gateway uses ``time.monotonic()``); the
seconds spent in each mode are summed from it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["Failover", "Mode", "ModeChange", "Probe"]

Probe = Literal["heartbeat", "request"]


class Mode(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class ModeChange:
    """A transition, returned by the call that caused it."""

    mode: Mode
    previous: Mode
    reason: str
    at: float


class Failover:
    """Counts consecutive misses and successes; decides the mode."""

    def __init__(
        self,
        *,
        misses_to_degrade: int,
        successes_to_recover: int,
        now: float,
        mode: Mode = Mode.ONLINE,
    ) -> None:
        if misses_to_degrade < 1 or successes_to_recover < 1:
            raise ValueError("misses_to_degrade and successes_to_recover must be >= 1")
        self._misses_to_degrade = misses_to_degrade
        self._successes_to_recover = successes_to_recover
        self._mode = mode
        self._since = now
        self._spent: dict[Mode, float] = dict.fromkeys(Mode, 0.0)
        self.consecutive_misses = 0
        self.consecutive_successes = 0
        self.reason = "startup"
        self.counters: Counter[str] = Counter()

    @property
    def mode(self) -> Mode:
        """``Mode.ONLINE`` or ``Mode.DEGRADED`` (a str: "online" / "degraded")."""
        return self._mode

    @property
    def online(self) -> bool:
        return self._mode is Mode.ONLINE

    def success(self, now: float, probe: Probe) -> ModeChange | None:
        """An answer arrived in time; the transition it caused, if any."""
        self.counters[f"{probe}_successes"] += 1
        self.consecutive_misses = 0
        if self._mode is Mode.ONLINE or probe != "heartbeat":
            return None
        self.consecutive_successes += 1
        if self.consecutive_successes < self._successes_to_recover:
            return None
        return self._enter(Mode.ONLINE, now, "cloud_recovered")

    def miss(self, now: float, probe: Probe, reason: str) -> ModeChange | None:
        """No answer in time (``reason``: timeout, unsent, ...); the transition, if any."""
        self.counters[f"{probe}_misses"] += 1
        self.counters[f"miss_{reason}"] += 1
        self.consecutive_successes = 0
        self.consecutive_misses += 1
        if self._mode is Mode.DEGRADED or self.consecutive_misses < self._misses_to_degrade:
            return None
        return self._enter(Mode.DEGRADED, now, f"cloud_{probe}_{reason}")

    def seconds_in_mode(self, now: float) -> Mapping[str, float]:
        """Seconds spent in each mode so far, the current stretch included."""
        spent = {mode.value: seconds for mode, seconds in self._spent.items()}
        spent[self._mode.value] += max(0.0, now - self._since)
        return spent

    def _enter(self, mode: Mode, now: float, reason: str) -> ModeChange:
        change = ModeChange(mode=mode, previous=self._mode, reason=reason, at=now)
        self._spent[self._mode] += max(0.0, now - self._since)
        self._mode = mode
        self._since = now
        self.reason = reason
        self.consecutive_misses = 0
        self.consecutive_successes = 0
        self.counters[f"entered_{mode.value}"] += 1
        return change
