"""ECI's cache choice, written from its "Overview of image caches" (docs/EMULATOR.md):

1. "Searches for all qualified image caches in the region. The size of each image cache
   satisfies the size requirements of the temporary storage space of the elastic container
   instance." Which way "satisfies" goes is not said: the model's ``cache_size_rule`` picks a
   reading (see :mod:`vk_eci.emulator.model`).
2. "Image caches are matched based on the following attributes in descending order of
   priority: the match degree, size, and creation time": more of the pod's images first, then
   "the size closest to the size of the elastic container instance", then "the most recently
   created". Equal on all three (only possible on a manual clock), the lower id first.

Only Ready caches are candidates. ``MatchImage`` queries (DescribeImageCaches) rank the same way
for an instance without extra temporary storage. A linear scan: a region holds at most a few
hundred caches (ECI's quota), and each check is a set intersection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vk_eci.emulator.caches import Cache
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.reference import acr_fold

__all__ = ["BASE_STORAGE_GIB", "Candidate", "held", "rank"]

# ECI's free temporary storage of an instance; EphemeralStorage adds to it.
BASE_STORAGE_GIB = 30


@dataclass(frozen=True)
class Candidate:
    cache: Cache
    matched: int
    total: int

    @property
    def complete(self) -> bool:
        return self.matched == self.total


def _keys(images: Iterable[str], model: EciModel) -> list[str]:
    keys = (acr_fold(i) if model.acr_endpoints_fold else i for i in images)
    return list(dict.fromkeys(keys))


def held(cache: Cache, images: list[str], model: EciModel) -> set[str]:
    """Those of ``images`` (normalised) that ``cache`` holds: the ones the pod need not pull."""
    keys = set(_keys(cache.norm_images, model))
    return {i for i in images if _keys([i], model)[0] in keys}


def rank(caches: Iterable[Cache], images: list[str], now: float, model: EciModel, *,
         extra_storage_gib: int = 0, min_matched: int = 1,
         require_all: bool = False) -> list[Candidate]:
    """The Ready caches holding at least ``min_matched`` of ``images`` (normalised), best first."""
    wanted = _keys(images, model)
    total = len(wanted)
    if not wanted:
        return []
    scored: list[tuple[tuple[int, int, float, str], Candidate]] = []
    for cache in caches:
        distance = _distance(cache.size_gib, model, extra_storage_gib)
        if distance is None or cache.status(now) != "Ready":
            continue
        held = set(_keys(cache.norm_images, model))
        matched = sum(1 for key in wanted if key in held)
        # A full match holds every image, whatever count was also asked (undocumented; the
        # node reads the two annotations so too: docs/EMULATOR.md, "Findings").
        if matched < (total if require_all else max(1, min_matched)):
            continue
        scored.append(((-matched, distance, -cache.created, cache.id),
                       Candidate(cache, matched, total)))
    scored.sort(key=lambda item: item[0])
    return [candidate for _, candidate in scored]


def _distance(size_gib: int, model: EciModel, extra_storage_gib: int) -> int | None:
    """How far a cache's size is from the instance's, or None if it does not qualify."""
    if model.cache_size_rule == "covers-request":
        return size_gib - extra_storage_gib if size_gib >= extra_storage_gib else None
    storage = BASE_STORAGE_GIB + extra_storage_gib
    return storage - size_gib if size_gib <= storage else None
