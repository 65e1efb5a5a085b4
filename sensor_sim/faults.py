"""Faults in a simulated device's send path: loss, duplication, reordering, garbage, storms.

Every decision comes from a `random.Random` seeded by the scenario seed and the device id, and
each datagram draws the same three numbers whatever happens to it, so one device's fault
sequence depends only on the sequence of datagrams it sends (deterministic for a seed).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from schemas.scenario import Faults

Send = Callable[[bytes], None]
Later = Callable[[float, Callable[[], None]], Any]
"""`loop.call_later`-like: run the callback after a delay; returns something with `cancel()`."""

GARBAGE_MARK = b"\x00"  # MQTT-SN length 0 and CoAP version 0: both drop it without answering


@dataclass
class FaultCounts:
    """Faults injected during a run (the report's `faults`)."""

    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    garbage: int = 0
    reboots: int = 0
    oversleeps: int = 0

    def add(self, other: FaultCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def fault_rng(seed: int, device_id: str, stream: str) -> random.Random:
    """The random stream `stream` ("datagrams", "device") of one device."""
    return random.Random(f"{seed}:{device_id}:faults:{stream}")


class FaultInjector:
    """Wraps one device's `send(datagram)`; at most one datagram is held back at a time."""

    def __init__(self, faults: Faults, rng: random.Random, later: Later,
                 counts: FaultCounts) -> None:
        self.faults = faults
        self.rng = rng
        self._later = later
        self.counts = counts
        self._send: Send = _nowhere
        self._held: bytes | None = None
        self._timer: Any = None

    def bind(self, send: Send) -> None:
        """Where the datagrams that survive go (the socket's `sendto`)."""
        self._send = send

    def sendto(self, data: bytes) -> None:
        rng = self.rng
        lost, twice, late = rng.random(), rng.random(), rng.random()
        if lost < self.faults.loss:
            self.counts.dropped += 1
            return
        copies = 2 if twice < self.faults.duplicate else 1
        if copies == 2:
            self.counts.duplicated += 1
        if late < self.faults.reorder:
            self.counts.reordered += 1
            self.flush()  # one held datagram at most: the older one goes first
            if copies == 2:
                self._send(data)  # the copy goes now, the original later
            self._held = data
            self._timer = self._later(self.faults.reorder_delay, self.flush)
            return
        for _ in range(copies):
            self._send(data)
        self.flush()  # a held datagram goes out after this newer one: reordered

    def flush(self) -> None:
        """Send the held datagram now (if any)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, None
        if held is not None:
            self._send(held)

    def close(self) -> None:
        """Forget the held datagram (the socket is going away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held = None


def _nowhere(data: bytes) -> None:
    raise RuntimeError("FaultInjector.bind() was not called")


def garbage(rng: random.Random) -> bytes:
    """A datagram that no gateway can parse: 0x00 then 3-40 random bytes."""
    return GARBAGE_MARK + rng.randbytes(rng.randint(3, 40))


def reboots_in_storm(seed: int, storm: int, device_id: str, fraction: float) -> bool:
    """Whether the device is one of those rebooting in storm number `storm` (1, 2, ...)."""
    return random.Random(f"{seed}:storm:{storm}:{device_id}").random() < fraction
