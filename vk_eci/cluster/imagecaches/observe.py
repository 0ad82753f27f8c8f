"""ImageCache reconcile, step observe: what ECI holds, as the controller last saw it.

One paged ``DescribeImageCaches`` lists the account's caches (not one call per object), every
``fast_poll`` seconds while any cache builds and every ``slow_poll`` seconds once all are
settled; after each listing every object is queued so that its status follows ECI. A cache the
controller just wrote to is described afresh until a newer listing covers that write. Every
state seen goes to the node's cache catalog at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vk_eci.cloud.api.errors import EciError
from vk_eci.cluster.imagecaches import status as st
from vk_eci.log import caches_logger as log
from vk_eci.provider import CacheObserver


@dataclass
class Seen:
    cache: Any
    at: float  # loop time the snapshot was taken


def tags(cache: Any) -> dict[str, str]:
    return {t.key: t.value for t in getattr(cache, "tags", None) or [] if t.key}


class EciView:
    """The ECI caches last listed or described, and when the controller last acted per object."""

    def __init__(self, eci: Any, observer: CacheObserver | None, *, fast_poll: float,
                 slow_poll: float, store: Callable[[], Mapping[str, dict[str, Any]]],
                 enqueue: Callable[[str], None]) -> None:
        self._eci = eci
        self._observer = observer
        self._fast_poll = fast_poll
        self._slow_poll = slow_poll
        self._store = store
        self._enqueue = enqueue
        self.caches: dict[str, Seen] = {}
        self.synced_at: float | None = None
        self.acted_at: dict[str, float] = {}
        self.poll_now = asyncio.Event()

    def reset(self) -> None:
        """A new leadership term trusts no earlier listing."""
        self.caches.clear()
        self.synced_at = None

    def building(self) -> bool:
        for obj in self._store().values():
            status = obj.get("status") or {}
            phase = status.get("phase")
            seen = self.caches.get(status.get("imageCacheId") or "")
            # No phase yet: its cache is about to be created, so its build is about to start.
            if phase is None or phase in st.BUILDING or (
                    seen is not None and seen.cache.status in st.BUILDING):
                return True
            if obj["metadata"].get("deletionTimestamp"):
                return True
        return False

    async def poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.poll_now.clear()
            try:
                started = loop.time()
                caches = await self._eci.describe_image_caches()
                before = set(self.caches)
                self.caches = {c.image_cache_id: Seen(c, started) for c in caches
                               if c.image_cache_id}
                for cache in caches:
                    self.saw(cache)
                for gone in before - set(self.caches):
                    self.gone(gone)
                self.synced_at = started
                # A write older than this listing no longer matters to cache(): forget it, so
                # that the map holds only recent writes (a missed DELETED cannot leak it).
                self.acted_at = {n: t for n, t in self.acted_at.items() if t >= started}
                for name in list(self._store()):
                    self._enqueue(name)
            except asyncio.CancelledError:
                raise
            except EciError as e:
                log.warning("listing ECI image caches failed: %s", e)
            except Exception as e:
                log.exception("listing ECI image caches failed: %s", e)
            interval = self._fast_poll if self.building() else self._slow_poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.poll_now.wait()

    async def cache(self, name: str, cache_id: str) -> Any | None:
        """The ECI cache ``cache_id``: from the last listing if that is newer than our last write
        for ``name``, else described afresh. None when ECI has no such cache."""
        acted = self.acted_at.get(name, float("-inf"))
        seen = self.caches.get(cache_id)
        if seen is not None and seen.at > acted:
            return seen.cache
        if seen is None and self.synced_at is not None and self.synced_at > acted:
            return None
        found = await self._eci.describe_image_caches(ids=[cache_id])
        found = [c for c in found if c.image_cache_id == cache_id]
        if not found:
            self.caches.pop(cache_id, None)
            self.gone(cache_id)
            return None
        self.caches[cache_id] = Seen(found[0], asyncio.get_running_loop().time())
        self.saw(found[0])
        return found[0]

    def saw(self, cache: Any) -> None:
        if self._observer is not None:
            self._observer.observe(cache)

    def gone(self, cache_id: str) -> None:
        if self._observer is not None:
            self._observer.observe_gone(cache_id)

    def acted(self, name: str) -> None:
        """We just wrote to ``name``'s cache: describe it afresh and list again soon."""
        self.acted_at[name] = asyncio.get_running_loop().time()
        self.poll_now.set()

    def forget(self, name: str) -> None:
        self.acted_at.pop(name, None)
