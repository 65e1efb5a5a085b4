"""Values that look like a real room, deterministic for a seed.

Time is simulated seconds since midnight of day 0 (`scenario.start_hour`, `time_scale`).
- temperature: a daily curve (coolest ~05:00, warmest ~15:00) plus ~0.5 degC while occupied,
  plus slow noise; kept in 16-27 degC (below the demo rules' 30 degC alarm);
- humidity: the mirror of the temperature curve, 30-65 %RH;
- occupancy: a schedule per room kind (home: mornings and evenings; bedroom: nights; office:
  working hours; meeting: three meetings a day; lobby: 07:30-19:00), each room's start/end
  shifted by a seeded offset of up to half an hour; any other room name follows `home`;
- CO2: first-order approach to 420 ppm (empty) or 420 + 450 ppm per occupant, 20 min constant;
- light: daylight (0 at night, up to ~350 lux at noon) plus 300 lux of lamps when occupied and
  dark; under 10 lux in an empty room at night;
- battery: linear drain from 100 % over `battery_days`, never below 0;
- smoke: 0.0 (no fire in a demo).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

DAY = 86_400.0
OUTDOOR_CO2 = 420.0
CO2_PER_PERSON = 450.0
CO2_TAU = 1_200.0
UNITS = {"temp": "Cel", "humidity": "%RH", "co2": "ppm", "light": "lx", "battery": "%EL",
         "smoke": "/"}
QUANTITIES = tuple(UNITS)

# (start hour, end hour) intervals of presence per room kind.
SCHEDULES: dict[str, tuple[tuple[float, float], ...]] = {
    "home": ((6.5, 8.5), (18.0, 23.0)),
    "bedroom": ((0.0, 7.0), (22.0, 24.0)),
    "office": ((9.0, 12.5), (13.5, 17.5)),
    "meeting": ((9.0, 10.0), (11.0, 12.0), (14.0, 15.5)),
    "lobby": ((7.5, 19.0),),
}
ROOMS = ("kitchen", "living_room", "bedroom", "office", "hall", "bathroom")


def schedule_for(room: str) -> tuple[tuple[float, float], ...]:
    if room in SCHEDULES:
        return SCHEDULES[room]
    return SCHEDULES["home"]


def daylight(hour: float) -> float:
    """Outdoor light reaching the room: 0 before 06:00 and after 20:00, ~350 lux at 13:00."""
    if not 6.0 <= hour <= 20.0:
        return 0.0
    return 350.0 * math.sin(math.pi * (hour - 6.0) / 14.0)


@dataclass
class RoomModel:
    """One device's environment; `sample(t)` with non-decreasing t gives one reading set."""

    seed: int
    room: str
    battery_days: float = 365.0
    rng: random.Random | None = field(default=None, repr=False)
    """Draw from this generator (a device's own) instead of one seeded by `seed`: one
    Mersenne Twister state (2.5 KB) less per device, which matters at 10,000 devices."""
    _rng: random.Random = field(init=False, repr=False)
    _offset: float = field(init=False)
    _temp_offset: float = field(init=False)
    _noise: float = field(init=False, default=0.0)
    _co2: float = field(init=False, default=OUTDOOR_CO2)
    _last: float | None = field(init=False, default=None)
    _start: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._rng = self.rng if self.rng is not None else random.Random(self.seed)
        self._offset = self._rng.uniform(-0.5, 0.5)  # hours: schedules differ a little per room
        self._temp_offset = self._rng.uniform(-1.0, 1.0)

    def occupants(self, t: float) -> int:
        hour = ((t % DAY) / 3600.0 - self._offset) % 24.0
        for start, end in schedule_for(self.room):
            if start <= hour < end:
                return 1 + (self.seed % 3 == 0)
        return 0

    def sample(self, t: float, quantities: Iterable[str] = QUANTITIES) -> dict[str, float]:
        """The `quantities` at simulated time t (seconds since midnight of day 0).

        The noise and the room's CO2 evolve at every call, whatever is asked for; the values
        themselves are only computed when asked for (the simulator's hot path)."""
        if self._start is None:
            self._start = t
        dt = 0.0 if self._last is None else max(0.0, t - self._last)
        self._last = t
        hour = (t % DAY) / 3600.0
        people = self.occupants(t)
        rng = self._rng
        # Slow AR(1) noise, so successive readings are close.
        self._noise = noise = 0.95 * self._noise + rng.gauss(0.0, 0.05)
        target = OUTDOOR_CO2 + CO2_PER_PERSON * people
        self._co2 = target + (self._co2 - target) * math.exp(-dt / CO2_TAU)
        out: dict[str, float] = {}
        for quantity in quantities:
            if quantity == "temp":
                curve = math.sin(2 * math.pi * (hour - 9.0) / 24.0)  # -1 at 03:00, +1 at 15:00
                temp = 21.0 + self._temp_offset + 2.5 * curve + 0.5 * min(people, 1) + noise
                out["temp"] = round(min(27.0, max(16.0, temp)), 2)
            elif quantity == "humidity":
                curve = math.sin(2 * math.pi * (hour - 9.0) / 24.0)
                out["humidity"] = round(min(65.0, max(30.0, 47.0 - 8.0 * curve + 20.0 * noise)), 1)
            elif quantity == "co2":
                out["co2"] = round(self._co2 + rng.gauss(0.0, 5.0), 0)
            elif quantity == "light":
                sun = daylight(hour)
                lamps = 300.0 if people and sun < 150.0 else 0.0
                out["light"] = round(max(0.0, sun + lamps + rng.gauss(0.0, 3.0)), 1)
            elif quantity == "battery":
                elapsed_days = (t - self._start) / DAY
                drained = 100.0 * elapsed_days / self.battery_days + self.seed % 7
                out["battery"] = round(max(0.0, 100.0 - drained), 2)
            elif quantity == "smoke":
                out["smoke"] = 0.0
        return out
