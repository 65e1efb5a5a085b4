"""Per-gateway sequence numbers that stay increasing across restarts."""

from __future__ import annotations

import time
from collections.abc import Callable


def first_seq(clock: Callable[[], float] = time.time) -> int:
    """Microseconds since the epoch: above any seq of an earlier run below 1M numbers/s."""
    return int(clock() * 1_000_000)
