"""Per-action, per-minute rate limits as ECI documents them (over the limit: Throttling.User).

A sliding one-minute window of real time (monotonic): limits are about the caller's request
rate, which ``time_scale`` does not change. ``DescribeContainerGroupStatus`` has no published
figure: it gets the same 2,000/min as ``DescribeContainerGroups`` by default, a setting like
every limit here (``Emulator(rate_limits=...)``, ``vk-eci emulator --rate-limit ACTION=N``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

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
                 now: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.other = other
        self._now = now
        self._hits: dict[str, deque[float]] = {}
        self.refused: dict[str, int] = {}  # Throttling.User answers by action

    def allow(self, action: str) -> bool:
        limit = self.limits.get(action, self.other)
        if limit is None:
            return True
        now = self._now()
        hits = self._hits.setdefault(action, deque())
        while hits and now - hits[0] >= WINDOW_S:
            hits.popleft()
        if len(hits) >= limit:
            self.refused[action] = self.refused.get(action, 0) + 1
            return False
        hits.append(now)
        return True
