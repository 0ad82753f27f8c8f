"""The emulator's guesses about ECI, each a named option (the table is in docs/EMULATOR.md).

Where ECI's documents say how it behaves, the default follows them and the alternative exists to
test against an older or other reading; where they say nothing, the default is the emulator's
guess and the alternatives are the other plausible readings. A benchmark whose figure depends on
one of these runs under each value and prints each row.

Set on ``Emulator(model=EciModel(...))`` or ``Emulator(model={"auto_create": "partial"})``, and
on the command line with ``vk-eci emulator --model NAME=VALUE`` (repeatable).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CHOICES", "EciModel"]

# name -> the allowed values of a choice option (the others are integers or booleans).
CHOICES: dict[str, tuple[str, ...]] = {
    "auto_create": ("miss", "partial"),
    "cache_size_rule": ("covers-request", "fits-instance"),
    "rate_window": ("sliding", "fixed"),
    "terminal_retention": ("eci", "forever"),
    "pull_duration": ("go", "seconds"),
    "auto_cache_retention": ("eci", "forever"),
    "throttle_code": ("Throttling.User", "Throttling"),
}


@dataclass(frozen=True)
class EciModel:
    # When AutoMatchImageCache creates a cache: "miss" (no Ready cache holds any of the pod's
    # images; ECI's English overview) or "partial" (no cache holds all of them; the Chinese
    # ImageCache page). The pod still uses the best partial cache under "partial".
    auto_create: str = "miss"
    # Which caches may serve an instance: "covers-request" (size >= the instance's
    # EphemeralStorage, closest = smallest such) or "fits-instance" (size <= the instance's
    # temporary storage, 30 GiB + EphemeralStorage, closest = largest such).
    cache_size_rule: str = "covers-request"
    # Whether the -vpc/-internal endpoints of one ACR registry match one another in caches.
    acr_endpoints_fold: bool = True
    # Size of an auto-created cache (GiB). ECI's documents: 30 GiB (+ extra ephemeral storage).
    auto_cache_size_gib: int = 30
    # "eci": an unused auto-created cache is deleted 7 days after creation, a used one 30 days
    # after its last use; "forever": kept.
    auto_cache_retention: str = "eci"
    # Rate-limit window: "sliding" (the last 60 s) or "fixed" (the calendar minute).
    rate_window: str = "sliding"
    # DescribeContainerGroupStatus calls per minute (not in ECI's limits table).
    status_limit: int = 2000
    # The code over a rate limit: the API gateway's "Throttling.User" or ECI's "Throttling"
    # (both HTTP 400, both documented; which one a limit hit gives is not).
    throttle_code: str = "Throttling.User"
    # Ended groups: "eci" (all kept 1 h after they end, then the last
    # ``terminal_keep_count`` of the region) or "forever".
    terminal_retention: str = "eci"
    terminal_keep_s: float = 3600.0
    terminal_keep_count: int = 100
    # Pull events: "go" (kubelet's ``in 1m41.289s (1m41.289s including waiting)``) or
    # "seconds" (``in 101.289s``, the emulator's former text).
    pull_duration: str = "go"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"emulator model {name}={getattr(self, name)!r}: expected one "
                                 f"of {', '.join(allowed)}")
        if self.status_limit < 0 or self.terminal_keep_count < 0 or self.terminal_keep_s < 0 \
                or self.auto_cache_size_gib < 20:
            raise ValueError("emulator model: limits and counts must be >= 0, "
                             "auto_cache_size_gib >= 20")

    @classmethod
    def of(cls, value: EciModel | Mapping[str, Any] | None) -> EciModel:
        if value is None:
            return cls()
        if isinstance(value, EciModel):
            return value
        return cls.parse(f"{k}={v}" for k, v in value.items())

    @classmethod
    def parse(cls, pairs: Iterable[str]) -> EciModel:
        """``["NAME=VALUE", ...]`` over the defaults; ValueError naming the bad item."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        given: dict[str, Any] = {}
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            name, raw = name.strip().replace("-", "_"), raw.strip()
            f = fields.get(name)
            if not sep or f is None:
                raise ValueError(f"--model {pair!r}: expected NAME=VALUE with NAME one of "
                                 f"{', '.join(fields)}")
            kind = type(getattr(cls(), name))
            try:
                if kind is bool:
                    if raw.lower() not in ("true", "false"):
                        raise ValueError(raw)
                    given[name] = raw.lower() == "true"
                else:
                    given[name] = kind(raw)
            except ValueError:
                raise ValueError(f"--model {pair!r}: {name} takes a {kind.__name__}") from None
        return cls(**given)

    def describe(self) -> str:
        """``name=value`` for every option that differs from the default (for result files)."""
        default = EciModel()
        diff = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)]
        return ", ".join(diff) or "defaults"
