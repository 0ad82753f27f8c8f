"""Clocks of the emulator.

Every modelled state is computed lazily from timestamps and ``clock.now()``, so a
:class:`ManualClock` advanced by a test moves every group and cache forward without
background tasks. Times are epoch seconds (floats) so they render as real ISO dates.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Protocol

# 2024-01-01T00:00:00Z: a fixed, realistic start so ManualClock timestamps look like real ones.
MANUAL_EPOCH = 1_704_067_200.0


class Clock(Protocol):
    def now(self) -> float:
        """Current emulated time, epoch seconds."""
        ...


class RealClock:
    """Wall time anchored once, then advanced by the monotonic clock (immune to NTP steps)."""

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)


class ManualClock:
    """A clock that moves only when told to: ``advance(seconds)``."""

    def __init__(self, start: float = MANUAL_EPOCH) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"ManualClock.advance: cannot go back in time ({seconds} s)")
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"ManualClock.set: {when} is before now ({self._now})")
        self._now = when


@lru_cache(maxsize=65536)
def iso(ts: float) -> str:
    """Alibaba's timestamp form: ``2024-01-01T00:00:05Z`` (UTC, second precision)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
