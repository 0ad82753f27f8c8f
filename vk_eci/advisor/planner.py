"""Planning: from observed demand, the advisor-owned caches that should exist (pure, no I/O).

``plan(demand, existing, budget, now=...)`` maximises

    F(S) = sum over observed image sets of (pods/day x pull seconds saved by the cache the ranking
           would give them, among S and the user's caches)  -  cost_per_gib_day x GiB(S)

over sets S of candidate caches (``candidates``) with |S| <= max_caches and GiB(S) <= max_gib.

Algorithm: lazy greedy on marginal net gain per GiB (the cost-benefit greedy of budgeted maximum
coverage), run twice -- from nothing and from the best single candidate -- keeping the better,
then up to 3 rounds of local improvement: a removal pass (drop any cache whose removal raises F),
consolidation (replace two chosen caches by one holding both, or grow a chosen cache by a
candidate's images, while that raises F -- a cache costs at least ``min_cache_gib`` however few
images it holds, so sets too small to pay for a disk of their own share one) and a greedy refill.
For a monotone submodular objective under one knapsack constraint, the better of the ratio greedy
and the best single element is within (1 - 1/e)/2 of the optimum (Khuller, Moss, Naor 1999;
Leskovec et al. 2007 for the lazy form, which evaluates the same choices because marginal gains
only shrink). Why greedy: the candidate pool is hundreds of caches and re-planning runs in the
node, so exact search is out; the bound holds where the objective behaves, and the tests check
it against brute force on small instances.

Where the objective is not submodular, honestly: the ranking orders caches by the *count* of images
held, then by smaller size -- not by the seconds they save. A new cache holding as many of a
pod's images as its current one but smaller (or equally large and newer) takes the pod even when
it saves less; so F is not monotone, marginal gains can grow, the lazy bounds can be stale and
the (1 - 1/e)/2 guarantee does not strictly hold. Gains are always computed exactly under the real
ranking (``savings.Supply``), never assumed, and the removal pass undoes a cache that only steals
pods from a better one. Consolidation is a local search outside the bound's argument (it only
ever raises F). The max_caches limit is a second constraint; with every cache at least
``min_cache_gib`` it rarely binds before max_gib, and it is not covered by the bound either.

Actions: a chosen existing advisor-owned cache is kept; a new cache replaces (updates) the
unchosen advisor-owned cache most similar to it (Jaccard >= 1/2), else is created; every other
advisor-owned cache is retired. User-created caches are supply pods will pick, never planned.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import replace

from matcher import normalize_image
from vk_eci.advisor.candidates import Builder, Candidate, Demand, candidates, demands
from vk_eci.advisor.model import (
    Action,
    Budget,
    ExistingCache,
    ImageSetDemand,
    Plan,
    PlannedCache,
)
from vk_eci.advisor.savings import Supply

__all__ = ["ALGORITHM", "plan"]

ALGORITHM = "lazy greedy (net gain per GiB) + best single + removal/consolidation passes"
_ROUNDS = 3
_MERGES = 6  # merge moves per round
_PARTNERS = 8  # unchosen candidates (best standalone gain first) a chosen cache may absorb
_UPDATE_JACCARD = 0.5


def _greedy(s: Supply, pool: Sequence[Candidate]) -> None:
    """Add candidates by best current net gain per GiB while one fits and gains."""
    version = 0
    heap: list[tuple[float, str, int, int]] = []
    for i, c in enumerate(pool):
        if c.name not in s.chosen:
            heap.append((-s.gain(c) / c.size_gib, c.name, i, version))
    heapq.heapify(heap)
    while heap:
        neg, name, i, seen = heapq.heappop(heap)
        c = pool[i]
        if -neg <= 0 or not s.fits(c):
            continue  # budgets only shrink as caches are added: it will never fit again
        if seen != version:
            heapq.heappush(heap, (-s.gain(c) / c.size_gib, name, i, version))
            continue
        s.add(c)
        version += 1


def _consolidate(s: Supply, pool: Sequence[Candidate], build: Builder) -> bool:
    """Merge two chosen caches into one, grow a chosen cache by a candidate's images, or add
    one cache holding two candidates, while that raises F (best move first): below
    ``min_cache_gib`` of images a second cache costs a whole minimum-size disk, one cache
    holding both costs nothing more."""
    changed = False
    known = {c.images: c for c in pool}  # an existing cache of those images is kept, not made
    ranked = _by_gain(s, pool)
    for _ in range(_MERGES):
        chosen = sorted(s.chosen.values(), key=lambda c: c.name)
        held = {c.images for c in chosen}
        partners = chosen + [c for c in ranked if c.images not in held][:_PARTNERS]
        best: tuple[float, str, list[Candidate], Candidate] | None = None
        for i, a in enumerate(partners):
            for b in partners[i + 1:]:
                m = build.merged(a, b)
                if m is None or m.images in held:
                    continue
                m = known.get(m.images, m)
                removed = [c for c in (a, b) if c.name in s.chosen]
                if not s.fits_instead(removed, m):
                    continue
                delta = s.replace_gain(removed, m)
                if delta > 1e-9 and (best is None or (delta, m.name) > best[:2]):
                    best = (delta, m.name, removed, m)
        if best is None:
            return changed
        _, _, removed, m = best
        for c in removed:
            s.remove(c.name)
        s.add(m)
        changed = True
    return changed


def _by_gain(s: Supply, pool: Sequence[Candidate]) -> list[Candidate]:
    # Gross: a set too small to pay for a cache of its own is what merging is for.
    gains = [(s.gain(c) + s.cost(c), c.name, c) for c in pool if c.name not in s.chosen]
    return [c for g, _, c in sorted(gains, key=lambda t: (-t[0], t[1])) if g > 0]


def _improve(s: Supply, pool: Sequence[Candidate], build: Builder) -> None:
    for _ in range(_ROUNDS):
        changed = False
        for name in sorted(s.chosen):
            if s.removal_gain(s.chosen[name]) > 1e-9:
                s.remove(name)
                changed = True
        changed = _consolidate(s, pool, build) or changed
        before = s.value()
        _greedy(s, pool)
        if not changed and s.value() <= before + 1e-9:
            return


def _search(
    ds: Sequence[Demand],
    users: Sequence[ExistingCache],
    pool: Sequence[Candidate],
    budget: Budget,
    now: float,
) -> Supply:
    plain = Supply(ds, users, budget, now)
    gains = [(plain.gain(c), c.name, c) for c in pool if c.size_gib <= budget.max_gib]
    _greedy(plain, pool)
    best = plain
    if gains and budget.max_caches > 0:
        top = max(gains, key=lambda g: (g[0], [-ord(ch) for ch in g[1]]))
        if top[0] > 0:
            seeded = Supply(ds, users, budget, now)
            seeded.add(top[2])
            _greedy(seeded, pool)
            if seeded.value() > plain.value() + 1e-9:
                best = seeded
    _improve(best, pool, Builder(ds, budget, now))
    return best


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _normalised(images: Sequence[str]) -> frozenset[str]:
    return frozenset(normalize_image(i) for i in images)


def plan(
    demand: Sequence[ImageSetDemand],
    existing: Sequence[ExistingCache],
    budget: Budget,
    *,
    now: float,
) -> Plan:
    """The caches to create, keep, update and retire (see the module docstring)."""
    ds = demands(demand, budget)
    users = [c for c in existing if not c.advisor_owned]
    owned = sorted((c for c in existing if c.advisor_owned), key=lambda c: c.name)
    pool = candidates(ds, existing, budget, now)
    chosen = _search(ds, users, pool, budget, now).chosen.values()

    kept = {c.existing.name for c in chosen if c.existing is not None}
    spare = [c for c in owned if c.name not in kept]
    final: list[tuple[Action, Candidate]] = []
    for c in sorted(chosen, key=lambda c: c.name):
        if c.existing is not None:
            final.append((Action.KEEP, c))
            continue
        similar = [
            (sim, e.name, e)
            for e in spare
            if (sim := _jaccard(c.images, _normalised(e.images))) >= _UPDATE_JACCARD
        ]
        if similar:
            _, _, e = max(similar, key=lambda t: (t[0], [-ord(ch) for ch in t[1]]))
            spare.remove(e)
            final.append((Action.UPDATE, replace(c, name=e.name)))
        else:
            final.append((Action.CREATE, c))

    # The figures are those of the final caches under their final names (ties by id).
    attribution = Supply(ds, users, budget, now)
    for _, c in final:
        attribution.add(c)
    caches: list[PlannedCache] = []
    for action, c in final:
        saved, workloads = attribution.earned(c.name)
        caches.append(
            PlannedCache(
                c.name, action, tuple(sorted(c.images)), c.size_gib, saved,
                attribution.cost(c), workloads,
            )
        )
    for e in spare:
        caches.append(
            PlannedCache(
                e.name, Action.RETIRE, tuple(sorted(e.images)), e.size_gib, 0.0,
                e.size_gib * budget.cost_per_gib_day,
            )
        )
    order = {a: n for n, a in enumerate(Action)}
    caches.sort(key=lambda p: (order[p.action], -p.saved_seconds_per_day, p.name))
    return Plan(tuple(caches), ALGORITHM)
