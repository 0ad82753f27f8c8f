"""One namespace per cache: a planned cache holding images pulled with credentials (pure).

The planner groups images by demand alone. A cache built with a namespace's pull secrets is that
namespace's (docs/SECURITY.md, docs/IMAGE_CACHES.md "Private images stay private"), so before
the plan is written each cache holding private images is scoped to **one** namespace: the one
whose pods pulled the most of its private images with their own credentials (ties: the name
first in order). The cache keeps its public images and that namespace's private images, and
names that namespace's pull secrets; private images only other namespaces have credentials for
are left out (their pods pull them, as without a cache). A demand spanning namespaces with
private images therefore gets the shared image set plus one namespace's private images, never a
cache mixing two namespaces' credentials.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace

from vk_eci.advisor.model import Action, Plan, PlannedCache

__all__ = ["scope_cache", "scope_plan"]

# image -> {namespace: pull secret names} of its pulls with credentials (empty: public).
PrivateOf = Callable[[str], Mapping[str, tuple[str, ...]]]


def scope_cache(cache: PlannedCache, private_of: PrivateOf,
                credentials: bool = True) -> PlannedCache:
    """``cache`` kept to one namespace's credentials (unchanged when all its images are
    public, or when it is retired). ``credentials`` False (no ImageCache controller in this
    process to honour the advisor's grant): its public images only."""
    if cache.action is Action.RETIRE:
        return cache
    private = {i: p for i in cache.images if (p := private_of(i))}
    if not private or not credentials:
        return replace(cache, images=tuple(i for i in cache.images if i not in private),
                       pull_secrets=())
    counts = Counter(space for held in private.values() for space in held)
    space = min(counts, key=lambda s: (-counts[s], s))
    images = tuple(i for i in cache.images if i not in private or space in private[i])
    names = dict.fromkeys(n for i in images if i in private for n in private[i][space])
    return replace(cache, images=images,
                   pull_secrets=tuple(f"{space}:{n}" for n in names))


def scope_plan(plan: Plan, private_of: PrivateOf, credentials: bool = True) -> Plan:
    """Every cache of ``plan`` scoped; one left with no image is dropped (an object of it
    the advisor owns is then retired)."""
    scoped = (scope_cache(c, private_of, credentials) for c in plan.caches)
    return replace(plan, caches=tuple(c for c in scoped if c.images))
