"""The image-cache model: builds with progress, updates, expiry, and the matching index.

A build is planned when it starts (preparing, one pull per image, snapshot), and a cache's
status is read from that plan at ``now``. Caches move in and out of ``matcher.CacheIndex`` as
their state changes; :meth:`CacheStore.refresh` applies those changes before any lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from matcher import CacheIndex, Match
from vk_eci.emulator.clock import iso
from vk_eci.emulator.groups import Event
from vk_eci.emulator.timing import DAY_S, Timing


@dataclass
class Build:
    """One build (create or update): when each phase ends, or when and why it failed."""

    started: float
    images: list[str]                 # as given
    prepared: float
    pulls: list[tuple[str, float, float, float]]   # (image, start, end, MB)
    ready_at: float | None
    failed_at: float | None = None
    failure: str | None = None
    update: bool = False


@dataclass
class Cache:
    id: str
    name: str
    region: str
    size_gib: int
    retention_days: int | None
    created: float
    tags: list[tuple[str, str]]
    snapshot_id: str
    builder_group_id: str
    builds: list[Build] = field(default_factory=list)
    norm_images: list[str] = field(default_factory=list)
    elimination_strategy: str = ""
    last_matched: float | None = None
    seq: int = 0

    @property
    def build(self) -> Build:
        return self.builds[-1]

    @property
    def images(self) -> list[str]:
        return self.build.images

    def status(self, now: float) -> str:
        b = self.build
        if b.failed_at is not None and now >= b.failed_at:
            return "UpdateFailed" if b.update else "Failed"
        if b.ready_at is not None and now >= b.ready_at:
            return "Ready"
        if b.update:
            return "Updating"
        return "Preparing" if now < b.prepared else "Creating"

    def progress(self, now: float) -> str:
        b = self.build
        if b.ready_at is not None and now >= b.ready_at:
            return "100%"
        total = sum(mb for *_, mb in b.pulls) or 1.0
        done = 0.0
        for _, start, end, mb in b.pulls:
            if now >= end:
                done += mb
            elif now > start:
                done += mb * (now - start) / (end - start)
        # The last percent is the snapshot: 100% only once Ready.
        return f"{min(99, int(99 * done / total))}%"

    def expires_at(self, timing: Timing) -> float | None:
        b = self.build
        if b.failed_at is not None and not b.update:
            return b.failed_at + timing.d(timing.failed_cache_keep_s)
        if self.retention_days is None:
            return None
        return self.created + timing.d(self.retention_days * DAY_S)

    def events(self, now: float) -> list[Event]:
        out: list[Event] = []
        for b in self.builds:
            for image, start, end, _ in b.pulls:
                if start <= now:
                    out.append(Event("Normal", "Pulling", f"Start pull image {image}", start,
                                     start))
                if end <= now and (b.failed_at is None or end < b.failed_at):
                    out.append(Event("Normal", "Pulled", f"Success pull image {image}", end, end))
            if b.failed_at is not None and b.failed_at <= now:
                out.append(Event("Warning", "Failed", b.failure or "image cache build failed",
                                 b.failed_at, b.failed_at))
            if b.ready_at is not None and b.ready_at <= now:
                verb = "updated" if b.update else "created"
                out.append(Event("Normal", "Ready", f"Successfully {verb} image cache {self.id}",
                                 b.ready_at, b.ready_at))
        return out


def plan_build(started: float, images: list[str], sizes: list[float], errors: list[str | None],
               size_gib: int, timing: Timing, already: set[str], norm: list[str],
               update: bool = False) -> Build:
    """Lay out a build. ``already`` holds normalised images kept from a previous build."""
    t = started + timing.d(timing.cache_prepare_s)
    b = Build(started, images, t, [], None, update=update)
    total_mb = sum(sizes)
    if total_mb / 1024.0 > size_gib:
        b.failed_at = t
        b.failure = (f"image cache disk of {size_gib} GiB is too small for {total_mb:.2f} MB "
                     "of images")
        return b
    for image, key, mb, err in zip(images, norm, sizes, errors, strict=True):
        if key in already:
            continue
        if err is not None:
            b.pulls.append((image, t, t, 0.0))
            b.failed_at = t + timing.d(1.0)
            b.failure = f"Failed to pull image {image}: {err}"
            return b
        end = t + timing.pull_s(mb)
        b.pulls.append((image, t, end, mb))
        t = end
    b.ready_at = t + timing.d(timing.cache_snapshot_s)
    return b


class CacheStore:
    """All caches of the region, and the matcher index of the Ready ones."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.caches: dict[str, Cache] = {}
        self.index = CacheIndex()
        self._indexed: dict[str, bool] = {}    # id -> indexed as ready
        self._seq = 0

    def add(self, cache: Cache) -> None:
        self._seq += 1
        cache.seq = self._seq
        self.caches[cache.id] = cache

    def remove(self, cache_id: str) -> Cache | None:
        cache = self.caches.pop(cache_id, None)
        if cache_id in self._indexed:
            self.index.remove(cache_id)
            del self._indexed[cache_id]
        return cache

    def reindex(self, cache_id: str) -> None:
        """Take a cache out of the index so that the next refresh puts it back with its current
        size and expiry (an update may change both)."""
        if self._indexed.pop(cache_id, None) is not None:
            self.index.remove(cache_id)

    def refresh(self, now: float) -> None:
        """Drop expired caches; put Ready ones in the index, take others out."""
        for cache in list(self.caches.values()):
            expires = cache.expires_at(self.timing)
            if expires is not None and now >= expires:
                self.remove(cache.id)
                continue
            ready = cache.status(now) == "Ready"
            if self._indexed.get(cache.id) != ready:
                if ready:
                    self.index.upsert(cache.id, cache.norm_images, size_gib=cache.size_gib,
                                      created_at=cache.created, ready=True, expires_at=expires)
                    self._indexed[cache.id] = True
                elif cache.id in self._indexed:
                    self.index.remove(cache.id)
                    del self._indexed[cache.id]

    def best(self, norm_images: list[str], now: float, *, min_matched: int = 1,
             require_all: bool = False) -> Match | None:
        self.refresh(now)
        return self.index.best(norm_images, min_matched=min_matched, require_all=require_all,
                               now=now)

    def rank(self, norm_images: list[str], now: float, *, limit: int,
             min_matched: int = 1, require_all: bool = False) -> list[Match]:
        self.refresh(now)
        ranked: list[Match] = list(self.index.rank(norm_images, limit=limit,
                                                   min_matched=min_matched,
                                                   require_all=require_all, now=now))
        return ranked


def render(cache: Cache, now: float, timing: Timing) -> dict[str, Any]:
    expires = cache.expires_at(timing)
    return {
        "ImageCacheId": cache.id,
        "ImageCacheName": cache.name,
        "Status": cache.status(now),
        "Progress": cache.progress(now),
        "Images": list(cache.images),
        "ImageCacheSize": cache.size_gib,
        "SnapshotId": cache.snapshot_id,
        "ContainerGroupId": cache.builder_group_id,
        "CreationTime": iso(cache.created),
        "ExpireDateTime": iso(expires) if expires is not None else "",
        "LastMatchedTime": iso(cache.last_matched) if cache.last_matched else "",
        "RegionId": cache.region,
        "ResourceGroupId": "",
        "EliminationStrategy": cache.elimination_strategy,
        "FlashSnapshotId": "",
        "Tags": [{"Key": k, "Value": v} for k, v in cache.tags],
        "Events": [e.render(cache.id) for e in cache.events(now)],
    }
