"""The caches one pod may start from, by provenance (:mod:`vk_eci.cloud.caches.provenance`).

The matcher ranks every cache; this filters its ranking to the caches whose registries the pod
has credentials for, and says whether ECI's server-side match (which knows nothing of
provenance) may be left to choose for the pod.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matcher import Match
from vk_eci.cloud.caches.catalog import CacheCatalog, CacheInfo
from vk_eci.cloud.caches.provenance import Access, registry_of


def access_for(catalog: CacheCatalog, operator: frozenset[str],
               credentials: frozenset[str]) -> Access:
    """The pod's :class:`Access` under the catalog's current view."""
    return Access(private=catalog.private_registries() | operator, operator=operator,
                  credentials=credentials, sends_credentials=bool(credentials))


def lacking(access: Access, info: CacheInfo | None) -> frozenset[str]:
    if info is None:
        return frozenset()
    return access.lacking(info.images, info.tags)


@dataclass(frozen=True)
class Ranked:
    """The permitted candidates (best first) and the registries of the refused ones."""

    matches: list[Match]
    refused: frozenset[str] = frozenset()


def permitted_rank(catalog: CacheCatalog, access: Access, images: Sequence[str], *,
                   limit: int, min_matched: int, require_all: bool, now: float) -> Ranked:
    """Up to ``limit`` candidates the pod may use; asks the matcher for more while refused
    ones take places (bounded by the catalog's size)."""
    want = limit
    refused: set[str] = set()
    while True:
        ranked = catalog.index.rank(images, limit=want, min_matched=min_matched,
                                    require_all=require_all, now=now)
        kept: list[Match] = []
        refused.clear()
        for match in ranked:
            missing = lacking(access, catalog.get(match.cache_id))
            if missing:
                refused |= missing
            else:
                kept.append(match)
        if len(kept) >= limit or len(ranked) < want:
            return Ranked(kept[:limit], frozenset(refused))
        want *= 4


def server_side_allowed(catalog: CacheCatalog, access: Access, images: Sequence[str],
                        now: float) -> str | None:
    """None when ECI's server-side match may choose for the pod, else why not.

    ECI matches any overlap and auto-creates a cache with the pod's credentials, untagged: so
    a pod sending credentials never gets it (its pull could be private), nor a pod any of
    whose images is of a registry that needs credentials, nor one overlapping a cache (Ready or
    still building) it may not use.
    """
    if access.sends_credentials:
        return "the pod has registry credentials, so ECI's server-side match and auto-create " \
               "(which know nothing of whose credentials built a cache) are not asked"
    private = sorted({r for r in (registry_of(i) for i in images) if r in access.private})
    if private:
        return (f"registry {', '.join(private)} needs credentials, so ECI's server-side "
                f"match is not asked")
    overlapping = permitted_rank(catalog, access, images, limit=1, min_matched=1,
                                 require_all=False, now=now)
    building = [c for c in catalog.building_with(images, now)
                if lacking(access, catalog.get(c))]
    if overlapping.refused or building:
        return ("a cache holding some of the pod's images needs registry credentials the pod "
                "does not have, so ECI's server-side match is not asked")
    return None
