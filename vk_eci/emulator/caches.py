"""The image-cache model: builds with progress, updates and expiry.

A build is planned when it starts (preparing, one pull per image, snapshot), and a cache's
status is read from that plan at ``now``; :meth:`CacheStore.refresh` drops expired caches
before any lookup. Choosing a cache for a pod is :mod:`vk_eci.emulator.matching`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vk_eci.emulator.clock import iso
from vk_eci.emulator.groups import Event
from vk_eci.emulator.timing import DAY_S, Timing

AUTO_UNUSED_DAYS = 7
AUTO_USED_DAYS = 30


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
    # Auto-created under the model's "eci" retention: deleted 7 days after creation if never
    # used, 30 days after the last use otherwise (ECI's overview of image caches).
    auto_retention: bool = False

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
        if self.auto_retention:
            if self.last_matched is None:
                return self.created + timing.d(AUTO_UNUSED_DAYS * DAY_S)
            return self.last_matched + timing.d(AUTO_USED_DAYS * DAY_S)
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
    """All caches of the region, in creation order."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.caches: dict[str, Cache] = {}
        self._seq = 0

    def add(self, cache: Cache) -> None:
        self._seq += 1
        cache.seq = self._seq
        self.caches[cache.id] = cache

    def remove(self, cache_id: str) -> Cache | None:
        return self.caches.pop(cache_id, None)

    def refresh(self, now: float) -> list[Cache]:
        """Drop expired caches; the others, in creation order."""
        for cache in list(self.caches.values()):
            expires = cache.expires_at(self.timing)
            if expires is not None and now >= expires:
                self.remove(cache.id)
        return list(self.caches.values())


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
