"""Per-action, per-minute rate limits as ECI documents them (over the limit: Throttling.User).

A one-minute window of real time (monotonic): limits are about the caller's request rate, which
``time_scale`` does not change. ECI does not say whether the window slides (the last 60 s) or is
the calendar minute: the emulator model's ``rate_window`` picks one (docs/EMULATOR.md).
``DescribeContainerGroupStatus`` has no published figure: the model's ``status_limit`` (by
default the same 2,000/min as ``DescribeContainerGroups``). Every limit is a setting
(``Emulator(rate_limits=...)``, ``vk-eci emulator --rate-limit ACTION=N``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

STATUS_ACTION = "DescribeContainerGroupStatus"
DEFAULT_LIMITS: dict[str, int] = {
    "CreateContainerGroup": 1000,
    "DescribeContainerGroups": 2000,
    "DescribeContainerGroupStatus": 2000,   # undocumented: assumed equal to the listing's
    "CreateImageCache": 200,
}
# Actions without a documented figure get a generous one.
DEFAULT_OTHER = 6000
WINDOW_S = 60.0


class RateLimiter:
    def __init__(self, limits: Mapping[str, int] | None = None, *,
                 other: int | None = DEFAULT_OTHER,
                 now: Callable[[], float] = time.monotonic, window: str = "sliding") -> None:
        if window not in ("sliding", "fixed"):
            raise ValueError(f"rate-limit window must be 'sliding' or 'fixed', got {window!r}")
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.other = other
        self.window = window
        self._now = now
        self._hits: dict[str, deque[float]] = {}
        self.refused: dict[str, int] = {}  # Throttling.User answers by action

    def allow(self, action: str) -> bool:
        limit = self.limits.get(action, self.other)
        if limit is None:
            return True
        now = self._now()
        hits = self._hits.setdefault(action, deque())
        if self.window == "fixed":
            start = now - now % WINDOW_S   # the current minute
            while hits and hits[0] < start:
                hits.popleft()
        else:
            while hits and now - hits[0] >= WINDOW_S:
                hits.popleft()
        if len(hits) >= limit:
            self.refused[action] = self.refused.get(action, 0) + 1
            return False
        hits.append(now)
        return True
