"""Plain records the advisor's observation, planning and applying share.

Observation turns the pods the node ran into ``ImageSetDemand`` (one per distinct image set);
planning is a pure function ``(demand, existing caches, Budget) -> Plan``; applying turns a
``Plan`` into advisor-owned ImageCache objects. Image references are always normalised
(``matcher.normalize_image``) and an image set's ``images`` are sorted, so equal sets compare
equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ADVISOR_OWNED_LABEL",
    "Action",
    "Budget",
    "ExistingCache",
    "ImageSetDemand",
    "Plan",
    "PlannedCache",
]

# The label every ImageCache the advisor creates carries; the advisor never updates or deletes
# an object without it (a user's cache is only ever read, as supply the plan can count on).
ADVISOR_OWNED_LABEL = "eci.vk-eci.io/advisor"


@dataclass(frozen=True, slots=True)
class ImageSetDemand:
    """What the node observed for pods with one distinct set of images.

    ``pods`` counts pod starts over the last ``window_hours`` (it may be a decayed, fractional
    count). ``pull_seconds`` holds, per image, the mean seconds ECI took to pull it when no cache
    held it (from ECI's pull events); an image never seen pulled is absent. ``image_gib`` holds the
    best known size estimate of each image in GiB (absent when unknown). ``workloads`` names up to
    a few owners (``namespace/Kind/name``) whose pods had this set, for the plan's "who benefits".
    """

    images: tuple[str, ...]
    pods: float
    window_hours: float
    pull_seconds: Mapping[str, float] = field(default_factory=dict)
    image_gib: Mapping[str, float] = field(default_factory=dict)
    workloads: tuple[str, ...] = ()

    @property
    def pods_per_hour(self) -> float:
        return self.pods / self.window_hours if self.window_hours > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ExistingCache:
    """A cache that exists now (an ImageCache object, or one ECI lists), as planning sees it."""

    name: str
    images: tuple[str, ...]
    size_gib: int
    created_at: float
    advisor_owned: bool


@dataclass(frozen=True, slots=True)
class Budget:
    """What the plan may spend.

    ``cost_per_gib_day`` is in the same unit as the savings: pull seconds saved per day that one
    GiB·day of cache disk must earn to be worth keeping. ``max_caches`` and ``max_gib`` bound the
    advisor-owned caches only (a user's caches are not the advisor's to pay for). ``max_images``
    and the size bounds are ECI's limits on one cache.
    """

    max_caches: int = 10
    max_gib: int = 2048
    cost_per_gib_day: float = 1.0
    max_images: int = 20
    min_cache_gib: int = 20
    max_cache_gib: int = 32768
    # Seconds a pod started from a cache spends attaching its disk (ECI documents 5 s with a
    # cache against 2 s scheduling + 1 s start), so a cache holding only tiny images of a pod can
    # cost it time: planning subtracts this from every hit.
    hit_overhead_seconds: float = 2.0
    # A cache's disk holds the images unpacked; registries report compressed sizes.
    size_headroom: float = 2.0
    # Fairness across tenants (docs/ADVISOR.md): when several namespaces make demand, no one of
    # them may hold more than this share of max_caches or max_gib (caches serving it count);
    # and an image's pull seconds count at most ``pull_allowance_seconds`` plus its size read
    # at ``min_pull_mib_per_s``: a slow registry cannot inflate what a cache saves.
    max_namespace_share: float = 0.5
    min_pull_mib_per_s: float = 10.0
    pull_allowance_seconds: float = 10.0


class Action(StrEnum):
    CREATE = "create"
    KEEP = "keep"
    UPDATE = "update"
    RETIRE = "retire"


@dataclass(frozen=True, slots=True)
class PlannedCache:
    """One cache of the plan and what it is expected to earn.

    ``name`` is the ImageCache object name (existing name for keep/update/retire; a stable name
    derived from the images for create). ``saved_seconds_per_day`` is the pull time the observed
    pods would save with this cache given the node's ranking over the whole planned set;
    ``cost_per_day`` = ``size_gib`` * ``Budget.cost_per_gib_day``.
    """

    name: str
    action: Action
    images: tuple[str, ...]
    size_gib: int
    saved_seconds_per_day: float
    cost_per_day: float
    workloads: tuple[str, ...] = ()
    # Pull secrets (``namespace:name``) of the one namespace whose credentials build it, when
    # it holds images pulled with credentials (advisor/scope.py; docs/ADVISOR.md).
    pull_secrets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """The advisor's decision: every cache it would create, keep, update or retire."""

    caches: tuple[PlannedCache, ...]
    algorithm: str = ""

    @property
    def expected_saved_seconds_per_day(self) -> float:
        return sum(c.saved_seconds_per_day for c in self.caches if c.action is not Action.RETIRE)

    @property
    def total_gib(self) -> int:
        return sum(c.size_gib for c in self.caches if c.action is not Action.RETIRE)
