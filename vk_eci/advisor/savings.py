"""What a set of caches saves the observed pods, under the node's ranking.

Every observed image set picks the cache ``matcher.CacheIndex`` would give it (most images held,
then smaller, then newer, then id), among the user's caches and the caches planned so far. A
pod saves the pull seconds of the images that cache holds, minus the time attaching the cache
disk takes (``Budget.hit_overhead_seconds``), so a partial match saves only what it matched and a
cache the ranking prefers can earn less than the one it displaces. A candidate's gain is computed
by comparing its own ranking key with each affected set's current best (the same key as
``Match.sort_key``) instead of inserting it, which is the same answer without touching the index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from matcher import CacheIndex, normalize_image
from vk_eci.advisor.candidates import Candidate, Demand
from vk_eci.advisor.model import Budget, ExistingCache

__all__ = ["Supply"]

_Key = tuple[int, int, float, str]


class Supply:
    """The caches pods would pick from (user-created ones fixed, planned ones added/removed),
    each observed set's pick, and the pull seconds per day it saves."""

    def __init__(
        self,
        ds: Sequence[Demand],
        users: Iterable[ExistingCache],
        budget: Budget,
        now: float,
    ) -> None:
        self.ds, self.budget, self.now = ds, budget, now
        self.index = CacheIndex()
        self.images: dict[str, frozenset[str]] = {}
        self.chosen: dict[str, Candidate] = {}
        self.by_image: dict[str, list[int]] = {}
        # Images each namespace's demand asks for (the fairness check's view of tenants).
        self.ns_images: dict[str, frozenset[str]] = {}
        for n, d in enumerate(ds):
            for img in d.images:
                self.by_image.setdefault(img, []).append(n)
            for ns in d.namespaces:
                self.ns_images[ns] = self.ns_images.get(ns, frozenset()) | d.images
        for u in users:
            held = frozenset(normalize_image(i) for i in u.images)
            if held:
                self.index.upsert(u.name, held, size_gib=u.size_gib, created_at=u.created_at)
                self.images[u.name] = held
        # Each set's three best caches, computed when first asked after a change: enough to
        # know its pick once any two caches are taken away (a merge removes at most two).
        self._top: list[list[tuple[_Key, str]] | None] = [None] * len(ds)
        self.key: list[_Key | None] = [None] * len(ds)
        self.pick: list[str | None] = [None] * len(ds)
        self.saved: list[float] = [0.0] * len(ds)
        for n in range(len(ds)):
            self._refresh(n)

    # ---- evaluation -----------------------------------------------------------------------

    def hit_saving(self, d: Demand, held: frozenset[str]) -> float:
        """Seconds per day ``d``'s pods save when they start from a cache holding ``held``."""
        return d.per_day * (d.seconds(held) - self.budget.hit_overhead_seconds)

    def cost(self, c: Candidate) -> float:
        return c.size_gib * self.budget.cost_per_gib_day

    def affected(self, images: Iterable[str]) -> list[int]:
        return sorted({n for img in images for n in self.by_image.get(img, ())})

    def gain(self, c: Candidate) -> float:
        """Net seconds per day (savings minus cost) that adding ``c`` would earn now."""
        total = -self.cost(c)
        for n in self.affected(c.images):
            d = self.ds[n]
            key = self._key(c, d)
            current = self.key[n]
            if key is not None and (current is None or key < current):
                total += self.hit_saving(d, c.images) - self.saved[n]
        return total

    def _key(self, c: Candidate, d: Demand) -> _Key | None:
        overlap = len(c.images & d.images)
        return (-overlap, c.size_gib, -c.created_at, c.name) if overlap else None

    def top(self, n: int) -> list[tuple[_Key, str]]:
        top = self._top[n]
        if top is None:
            ranked = self.index.rank(self.ds[n].images, limit=3, now=self.now)
            top = self._top[n] = [(m.sort_key(), m.cache_id) for m in ranked]
        return top

    def replace_gain(self, removed: Sequence[Candidate], m: Candidate) -> float:
        """Net change of F if the chosen ``removed`` (at most two) gave way to ``m``."""
        gone = {c.name for c in removed}
        total = sum(self.cost(c) for c in removed) - self.cost(m)
        touched = set(m.images).union(*(c.images for c in removed))
        held, size, newer, name = m.images, m.size_gib, -m.created_at, m.name
        for n in self.affected(touched):
            d = self.ds[n]
            overlap = len(held & d.images)  # inlined _key: this loop is the planner's hot spot
            mine = (-overlap, size, newer, name) if overlap else None
            if self.pick[n] not in gone:
                # Its pick stays: only ``m`` outranking it changes anything.
                current = self.key[n]
                if mine is not None and (current is None or mine < current):
                    total += self.hit_saving(d, m.images) - self.saved[n]
                continue
            alt = next(((k, name) for k, name in self.top(n) if name not in gone), None)
            if mine is not None and (alt is None or mine < alt[0]):
                after = self.hit_saving(d, m.images)
            elif alt is not None:
                after = self.hit_saving(d, self.images[alt[1]])
            else:
                after = 0.0
            total += after - self.saved[n]
        return total

    def removal_gain(self, c: Candidate) -> float:
        """Net change of F if the chosen ``c`` were dropped (its pods fall to their next)."""
        total = self.cost(c)
        for n in self.affected(c.images):
            if self.pick[n] != c.name:
                continue
            alt = next((name for _, name in self.top(n) if name != c.name), None)
            after = 0.0 if alt is None else self.hit_saving(self.ds[n], self.images[alt])
            total += after - self.saved[n]
        return total

    def fits_instead(self, removed: Sequence[Candidate], m: Candidate) -> bool:
        count = len(self.chosen) - len(removed) + 1
        gib = self.gib() - sum(c.size_gib for c in removed) + m.size_gib
        gone = {c.name for c in removed}
        kept = [c for c in self.chosen.values() if c.name not in gone]
        return count <= self.budget.max_caches and gib <= self.budget.max_gib \
            and self._fair([*kept, m])

    def value(self) -> float:
        """Savings of every observed set minus the cost of the planned caches (user caches are
        not the plan's to pay for)."""
        return sum(self.saved) - sum(self.cost(c) for c in self.chosen.values())

    def gib(self) -> int:
        return sum(c.size_gib for c in self.chosen.values())

    def fits(self, c: Candidate) -> bool:
        return (
            len(self.chosen) < self.budget.max_caches
            and self.gib() + c.size_gib <= self.budget.max_gib
            and self._fair([*self.chosen.values(), c])
        )

    def _fair(self, caches: Sequence[Candidate]) -> bool:
        """No namespace served by more than its share of the budget's caches or GiB (only
        when several namespaces make demand: a single tenant has the whole budget). A cache
        serving several namespaces counts for each."""
        if len(self.ns_images) < 2:
            return True
        share = self.budget.max_namespace_share
        max_count = max(1, math.floor(share * self.budget.max_caches))
        max_gib = share * self.budget.max_gib
        for held in self.ns_images.values():
            serving = [c for c in caches if not held.isdisjoint(c.images)]
            if len(serving) > max_count or sum(c.size_gib for c in serving) > max_gib:
                return False
        return True

    # ---- changes --------------------------------------------------------------------------

    def add(self, c: Candidate) -> None:
        self.index.upsert(c.name, c.images, size_gib=c.size_gib, created_at=c.created_at)
        self.images[c.name] = c.images
        self.chosen[c.name] = c
        for n in self.affected(c.images):
            self._refresh(n)

    def remove(self, name: str) -> None:
        c = self.chosen.pop(name)
        self.index.remove(name)
        del self.images[name]
        for n in self.affected(c.images):
            self._refresh(n)

    def _refresh(self, n: int) -> None:
        d = self.ds[n]
        self._top[n] = None
        m = self.index.best(d.images, now=self.now)
        if m is None:
            self.key[n], self.pick[n], self.saved[n] = None, None, 0.0
            return
        self.key[n] = m.sort_key()
        self.pick[n] = m.cache_id
        self.saved[n] = self.hit_saving(d, self.images[m.cache_id])

    def earned(self, name: str) -> tuple[float, tuple[str, ...]]:
        """What ``name`` saves per day, and the workloads of the sets that pick it."""
        saved, workloads = 0.0, set[str]()
        for n, pick in enumerate(self.pick):
            if pick == name:
                saved += self.saved[n]
                workloads.update(self.ds[n].workloads)
        return saved, tuple(sorted(workloads))
