"""The caches the planner may choose from, and the demand in the form planning reads it.

Candidates, all deduplicated by image set (an advisor-owned cache that exists wins over a new
candidate with the same images, so it is kept rather than rebuilt):

- every observed image set;
- for pairs of frequently co-occurring sets (Jaccard similarity >= 1/3 among the most valuable
  sets), their intersection and their union: a CI runner family whose tag bumps change one image
  shares the others, which are worth caching even while the bumped one keeps changing, and the
  union serves both members fully while it fits;
- for each cluster of similar sets (connected by Jaccard >= 1/2), its popular core (the images
  in at least half of the cluster's pods) and its most valuable images up to ``max_images``;
- every advisor-owned cache that exists now.

A candidate holding more than ``Budget.max_images`` images keeps the most valuable ones (pods per
day x pull seconds). Its size is the images' GiB estimates x ``Budget.size_headroom``, rounded up,
at least ``min_cache_gib``; a candidate larger than ``max_cache_gib`` is dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from matcher import normalize_image
from vk_eci.advisor.model import Budget, ExistingCache, ImageSetDemand

__all__ = ["Builder", "Candidate", "Demand", "candidates", "demands", "planned_name"]

# When the node never saw an image's size, a guess in the range of common application images.
UNKNOWN_IMAGE_GIB = 0.5
# Sets considered for pairwise unions/intersections: the most valuable ones (bounds the
# quadratic step; the tail of rare sets adds little).
_PAIR_POOL = 80
_PAIR_JACCARD = 1 / 3
_CLUSTER_JACCARD = 1 / 2


@dataclass(frozen=True, slots=True)
class Demand:
    """One observed image set as planning reads it: pods per day and seconds per image."""

    images: frozenset[str]
    per_day: float
    pull_s: dict[str, float]
    gib: dict[str, float]
    workloads: tuple[str, ...]

    @property
    def namespaces(self) -> frozenset[str]:
        """Whose demand this is: the namespaces of its workloads (``""`` when unknown)."""
        return frozenset(w.split("/", 1)[0] for w in self.workloads) or frozenset({""})

    def seconds(self, held: Iterable[str]) -> float:
        """Pull seconds one pod saves with a cache holding ``held`` (before the hit overhead)."""
        # fsum is exactly rounded, so the result does not depend on the set's iteration order
        # (string hashing differs per process): equal gains must compare equal in every run.
        return math.fsum(self.pull_s.get(i, 0.0) for i in held if i in self.images)


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    images: frozenset[str]
    size_gib: int
    created_at: float
    existing: ExistingCache | None = None


def planned_name(images: Iterable[str]) -> str:
    """A stable ImageCache name for a new cache of ``images`` (a valid DNS-1123 label)."""
    digest = hashlib.sha256("\n".join(sorted(images)).encode()).hexdigest()[:12]
    return f"advisor-{digest}"


def max_pull_seconds(gib: float | None, budget: Budget) -> float:
    """The most pull seconds an image of ``gib`` (unknown: ``UNKNOWN_IMAGE_GIB``) may count."""
    size = UNKNOWN_IMAGE_GIB if gib is None else gib
    return budget.pull_allowance_seconds + size * 1024.0 / max(budget.min_pull_mib_per_s, 1e-9)


def demands(raw: Sequence[ImageSetDemand], budget: Budget | None = None) -> list[Demand]:
    """Normalised demand, identical image sets merged, empty or idle sets dropped; pull seconds
    unknown for an image are estimated from the seconds per GiB seen for the others, and every
    image's seconds are clamped by its size (:func:`max_pull_seconds`) when ``budget`` is
    given."""
    merged: dict[frozenset[str], list[ImageSetDemand]] = {}
    for d in raw:
        if d.pods <= 0 or d.window_hours <= 0 or not d.images:
            continue
        key = frozenset(normalize_image(i) for i in d.images)
        merged.setdefault(key, []).append(d)
    rate_s, rate_gib = 0.0, 0.0
    for d in raw:
        for img, sec in d.pull_seconds.items():
            known = d.image_gib.get(img)
            if known and sec > 0:
                rate_s, rate_gib = rate_s + sec, rate_gib + known
    s_per_gib = rate_s / rate_gib if rate_gib > 0 else 0.0
    out: list[Demand] = []
    for key in sorted(merged, key=lambda k: sorted(k)):
        group = merged[key]
        per_day = math.fsum(d.pods_per_hour for d in group) * 24.0
        # Records of one set (several nodes, or spellings of one reference) merge order-free:
        # pull seconds weighted by pods, the largest size estimate.
        weighted: dict[str, tuple[float, float]] = {}
        gib: dict[str, float] = {}
        for d in group:
            for img, sec in d.pull_seconds.items():
                s, w = weighted.get(normalize_image(img), (0.0, 0.0))
                weighted[normalize_image(img)] = (s + max(0.0, sec) * d.pods, w + d.pods)
            for img, size in d.image_gib.items():
                norm = normalize_image(img)
                gib[norm] = max(gib.get(norm, 0.0), max(0.0, float(size)))
        pull = {img: s / w for img, (s, w) in weighted.items()}
        for img in key:
            pull.setdefault(img, gib.get(img, UNKNOWN_IMAGE_GIB) * s_per_gib)
        if budget is not None:
            pull = {img: min(sec, max_pull_seconds(gib.get(img), budget))
                    for img, sec in pull.items()}
        workloads = sorted({w for d in group for w in d.workloads})
        out.append(Demand(key, per_day, pull, gib, tuple(workloads)))
    return out


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def _image_value(ds: Sequence[Demand]) -> dict[str, float]:
    value: dict[str, float] = {}
    for d in ds:
        for img in d.images:
            value[img] = value.get(img, 0.0) + d.per_day * d.pull_s.get(img, 0.0)
    return value


class Builder:
    """Makes candidates: trims to the most valuable images, sizes them, deduplicates."""

    def __init__(self, ds: Sequence[Demand], budget: Budget, now: float) -> None:
        self.budget, self.now = budget, now
        self.value = _image_value(ds)
        self.gib: dict[str, float] = {}
        for d in ds:
            for img, size in d.gib.items():
                self.gib.setdefault(img, size)
        self.out: dict[frozenset[str], Candidate] = {}

    def trim(self, images: Iterable[str]) -> frozenset[str]:
        ranked = sorted(set(images), key=lambda i: (-self.value.get(i, 0.0), i))
        return frozenset(ranked[: self.budget.max_images])

    def size(self, images: Iterable[str]) -> int:
        gib = math.fsum(self.gib.get(i, UNKNOWN_IMAGE_GIB) for i in images)
        raw = gib * self.budget.size_headroom
        return max(self.budget.min_cache_gib, math.ceil(raw - 1e-9))

    def merged(self, a: Candidate, b: Candidate) -> Candidate | None:
        """One cache holding both, when ECI's limits allow (no image dropped)."""
        union = a.images | b.images
        if len(union) > self.budget.max_images:
            return None
        size = self.size(union)
        if size > self.budget.max_cache_gib:
            return None
        return Candidate(planned_name(union), union, size, self.now)

    def add(self, images: Iterable[str]) -> None:
        key = self.trim(images)
        if not key or key in self.out:
            return
        size = self.size(key)
        if size > self.budget.max_cache_gib:
            return
        self.out[key] = Candidate(planned_name(key), key, size, self.now)


def candidates(
    ds: Sequence[Demand], existing: Sequence[ExistingCache], budget: Budget, now: float
) -> list[Candidate]:
    """Every cache planning may choose, existing advisor-owned ones included; deterministic."""
    b = Builder(ds, budget, now)
    for c in sorted(existing, key=lambda c: c.name):  # the same images twice: first name wins
        if c.advisor_owned:
            key = frozenset(normalize_image(i) for i in c.images)
            if key and key not in b.out:
                b.out[key] = Candidate(c.name, key, c.size_gib, c.created_at, c)
    for d in ds:
        b.add(d.images)
    pool = sorted(ds, key=lambda d: (-d.per_day * d.seconds(d.images), sorted(d.images)))
    pool = pool[:_PAIR_POOL]
    parent = list(range(len(pool)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(pool):
        for j in range(i + 1, len(pool)):
            bset = pool[j].images
            sim = _jaccard(a.images, bset)
            if sim >= _PAIR_JACCARD:
                b.add(a.images & bset)
                b.add(a.images | bset)
            if sim >= _CLUSTER_JACCARD:
                parent[root(j)] = root(i)
    clusters: dict[int, list[Demand]] = {}
    for i, d in enumerate(pool):
        clusters.setdefault(root(i), []).append(d)
    for members in clusters.values():
        if len(members) < 2:
            continue
        pods = sum(d.per_day for d in members)
        share: dict[str, float] = {}
        for d in members:
            for img in d.images:
                share[img] = share.get(img, 0.0) + d.per_day
        b.add(img for img, p in share.items() if p >= pods / 2)
        b.add(share)
    return sorted(b.out.values(), key=lambda c: c.name)
