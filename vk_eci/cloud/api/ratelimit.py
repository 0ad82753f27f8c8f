"""Client-side token buckets, one per ECI action, so that we stay under ECI's per-minute limits.

Interactive use (``kubectl logs``/``exec`` through the kubelet API) draws on budgets of its own
(``<action>@interactive``) whose waiting room is bounded: however many sessions are open, they
never take a token from the node's own work (status sync, creates, deletes), and once the
waiting room is full a call is refused at once as :class:`Throttled` instead of queueing.
ECI's documented ``DescribeContainerGroups`` quota is split so that both budgets together stay
within it.

A bucket for a limit of ``N`` calls a minute refills at ``0.85·N/60`` per second and holds at
most ``0.1·N`` tokens: within any 60 s window it grants at most ``0.1·N + 0.85·N = 0.95·N``
calls, so bursts are allowed and the last 5 % absorb the spread of request latencies (a call
granted at t reaches ECI somewhat later, so grants 60 s apart can arrive closer together). At
exactly ``N`` per 60 s of grants (0.9 refill), bench_node saw ECI answer Throttling.User to
creates at 2,000 pods.

**Shares.** When several processes spend one ECI account (a fleet of nodes), each process gets
a *share* of every limit (:meth:`RateLimiter.set_share`, set by the cluster side's membership,
``docs/RELIABILITY.md`` "One account budget"). A share scales every bucket's refill rate and
capacity. A share change first settles the tokens earned at the old rate; a lower capacity drops
the tokens above it; a higher one is filled only by the new rate, never at once. So within any
60 s window a process grants at most the tokens it held at the window's start plus the integral
of its rate: if the shares of all processes sum to at most 1 at every instant, the account's
grants in any window stay under ``0.95·N`` as above. Share 0 grants nothing (callers wait).
The health probe (:data:`UNSHARED`) keeps its own budget whatever the share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from vk_eci.cloud.api.errors import Throttled

INTERACTIVE = "interactive"
# Callers that may wait on an interactive bucket at once; the next one is refused.
INTERACTIVE_MAX_WAITERS = 32

# Limits per minute from ECI's API documentation; the others are conservative
# guesses well under what ECI accepts per account.
DEFAULT_LIMITS_PER_MINUTE: Mapping[str, float] = {
    "CreateContainerGroup": 1000,
    # ECI's 2,000 a minute, split: 1,600 for the node, 400 for kubectl logs/exec lookups.
    "DescribeContainerGroups": 1600,
    f"DescribeContainerGroups@{INTERACTIVE}": 400,
    f"DescribeContainerLog@{INTERACTIVE}": 600,
    f"ExecContainerCommand@{INTERACTIVE}": 600,
    # Undocumented; ECI's listing figure is assumed (the node polls it 60-240 times a minute).
    "DescribeContainerGroupStatus": 2000,
    "DeleteContainerGroup": 1000,
    "CreateImageCache": 200,
    "UpdateImageCache": 200,
    "DeleteImageCache": 200,
    "DescribeImageCaches": 1000,
}
DEFAULT_LIMIT_PER_MINUTE = 600.0
# Not shared among a fleet's processes: the health probe (one call per node Lease renewal). A
# process still waiting to be counted must be able to say whether ECI answers, or its Node
# would turn NotReady for a wait of its own making; its few calls are far below ECI's figure.
UNSHARED = frozenset({"DescribeRegions"})
# Share of a limit refilled per minute; BURST is held: REFILL + BURST < 1 leaves the margin.
REFILL = 0.85
BURST = 0.1


class TokenBucket:
    """Grants one token per call; waits (asynchronously) when empty."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_waiters: int | None = None, name: str = "") -> None:
        if per_minute <= 0:
            raise ValueError(f"rate limit must be positive, got {per_minute} per minute")
        self.rate = REFILL * per_minute / 60.0
        self.capacity = max(1.0, BURST * per_minute)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = asyncio.Lock()
        self._max_waiters = max_waiters
        self._waiting = 0
        self.name = name
        self.per_minute = per_minute
        self.share = 1.0
        self._changed = asyncio.Event()

    def set_share(self, share: float) -> None:
        """Scale rate and capacity to ``share`` of ``per_minute`` (see the module docstring)."""
        self._refill()  # tokens earned so far are earned at the old rate
        self.share = share
        self.rate = REFILL * self.per_minute * share / 60.0
        self.capacity = max(1.0, BURST * self.per_minute * share) if share > 0 else 0.0
        self._tokens = min(self._tokens, self.capacity)
        self._changed.set()
        self._changed = asyncio.Event()

    def start_empty(self, earned_for: float) -> None:
        """Hold only what ``earned_for`` seconds at the current rate earn (a bucket made after
        its process joined a fleet must not start fuller than one made when it joined)."""
        self._tokens = min(self.capacity, max(0.0, earned_for) * self.rate)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> float:
        """Take a token, waiting for one if needed; returns the seconds waited."""
        waited = 0.0
        if self._max_waiters is not None and self._waiting >= self._max_waiters:
            raise Throttled("Throttled.LocalQueueFull",
                            f"{self._waiting} calls already wait for the {self.name} budget "
                            f"of {self.rate * 60 / REFILL:.0f} a minute; try again later")
        self._waiting += 1
        try:
            return await self._acquire(waited)
        finally:
            self._waiting -= 1

    async def _acquire(self, waited: float) -> float:
        # The lock keeps waiters in arrival order, so that no caller starves.
        async with self._lock:
            self._refill()
            # The epsilon absorbs float error: without it a refill can land a hair under 1.0
            # and the next (tiny) sleep no longer moves a large clock value at all.
            while self._tokens < 1.0 - 1e-9:
                if self.rate <= 0:  # share 0: nothing until the share changes
                    started = self._clock()
                    await self._changed.wait()
                    waited += self._clock() - started
                    self._refill()
                    continue
                delay = max((1.0 - self._tokens) / self.rate, 1e-6)
                await self._sleep(delay)
                waited += delay
                self._refill()
            self._tokens = max(0.0, self._tokens - 1.0)
        return waited


class RateLimiter:
    """One :class:`TokenBucket` per action, created on first use."""

    def __init__(self, limits: Mapping[str, float] | None = None, *,
                 default_per_minute: float | None = DEFAULT_LIMIT_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = dict(DEFAULT_LIMITS_PER_MINUTE)
        self._limits.update(limits or {})
        self._default = default_per_minute
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self.share = 1.0
        self._shared_since: float | None = None  # None: not sharing, buckets start full

    def set_share(self, share: float) -> None:
        """This process's share of every limit, in [0, 1] (1: the account's whole budget)."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a rate share must be within [0, 1], got {share}")
        if share > 0 and (self.share == 0 or self._shared_since is None):
            self._shared_since = self._clock()
        self.share = share
        for key, bucket in self._buckets.items():
            if key not in UNSHARED:
                bucket.set_share(share)

    async def acquire(self, action: str, budget: str | None = None) -> float:
        """A token of ``action``'s bucket, or of its ``budget`` (e.g. ``interactive``) one."""
        key = f"{action}@{budget}" if budget else action
        bucket = self._buckets.get(key)
        if bucket is None:
            limit = self._limits.get(key, self._default)
            if not limit:  # None or 0: unlimited
                return 0.0
            bucket = self._buckets[key] = TokenBucket(
                limit, clock=self._clock, name=key,
                max_waiters=INTERACTIVE_MAX_WAITERS if budget == INTERACTIVE else None)
            if key not in UNSHARED and (self.share != 1.0 or self._shared_since is not None):
                bucket.set_share(self.share)
                bucket.start_empty(self._clock() - (self._shared_since or self._clock()))
        return await bucket.acquire()
