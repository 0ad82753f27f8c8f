"""The account's ECI image caches, mirrored for matching (ECI is the source of truth).

A :class:`CacheCatalog` holds a :class:`matcher.CacheIndex` (what automatic match ranks) plus each
cache's name, status, progress and expiry (what explicit requests and events need). It is filled
by a full, paged ``DescribeImageCaches`` at start, kept current by a periodic re-sync, and
refreshed at once for one cache when a pod names a cache it does not know or that is not Ready
yet. Caches made in the console or API count as much as those made from ImageCache objects.

Every cache state the node observes goes into the view at once (:meth:`CacheCatalog.observe`,
:meth:`CacheCatalog.observe_gone`): the ImageCache controller's listings, describes, adoptions
and deletions (when this node leads it) and the caches the node creates itself. So an ImageCache
object whose status says ``Ready`` is in the view before that status is written.

How old a view a decision may use (docs/IMAGE_CACHES.md): caches the node did not observe (made
in the console or API, or through ImageCache objects while another node leads the controller) are
learnt only by listing. A decision that is a full hit uses the view as it is: for those caches
it is then at most ``resync_interval`` (60 s) old. A decision that missed, held only some images,
or overlaps a cache still building re-lists first whenever the listing is older than
``min_relist_age`` (5 s) (:meth:`CacheCatalog.relist_if_stale`). So a full hit on a big cache can
miss a smaller one only when that one was made outside the node's sight in the last
``resync_interval``. Callers that arrive while a listing is in flight wait for it and then find
it fresh, so a burst of pods costs one listing per ``min_relist_age``, not one per pod
(a failed listing counts too: ECI being down must not turn a burst into a storm of listings).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from matcher import CacheIndex, InvalidReference, normalize_image
from vk_eci.cloud.api.errors import EciError, NotFound, Retryable
from vk_eci.cloud.caches.provenance import PrivateRegistries, credentialed_registries
from vk_eci.log import caches_logger
from vk_eci.metrics import Metrics

READY = "Ready"
EXPIRED = "Expired"
# Statuses of a cache that is being built (or rebuilt): it may be Ready soon.
BUILDING = frozenset({"Preparing", "Creating", "Updating"})
# ECI's documented statuses; always exported (0 when none) so dashboards see every series.
# A cache in one of these can never serve a pod again (ECI deletes it soon).
FAILED_STATES = frozenset({"Failed", EXPIRED})
KNOWN_PHASES = ("Preparing", "Creating", READY, "Failed", "Updating", "UpdateFailed", EXPIRED)


class CatalogUnavailable(Retryable):
    """ECI could not list the image caches recently and it is too soon to ask again."""


class ImageCacheLister(Protocol):
    """The one client call the catalog needs (``EciClient`` has it)."""

    async def describe_image_caches(self, *, ids: Sequence[str] | None = None) -> list[Any]:
        ...


@dataclass(frozen=True)
class CacheInfo:
    """One ECI image cache as the node knows it."""

    cache_id: str
    name: str
    status: str
    images: tuple[str, ...]  # normalised; references we cannot parse are left out
    size_gib: int
    created_at: float
    expires_at: float | None = None
    progress: str = ""
    snapshot_id: str = ""
    # ECI's tags, sorted: who made the cache (the node only builds on for caches it made).
    tags: tuple[tuple[str, str], ...] = ()

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def state(self, now: float) -> str:
        """The status, or ``Expired`` once past its retention (ECI deletes it soon after)."""
        return EXPIRED if self.expired(now) else self.status

    def ready(self, now: float) -> bool:
        return self.status == READY and not self.expired(now)

    def building(self, now: float) -> bool:
        return self.status in BUILDING and not self.expired(now)


def parse_time(text: str | None) -> float | None:
    """ECI's ISO 8601 UTC times (``2019-10-11T08:00:00Z``, sometimes without seconds)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def info_from_model(model: Any) -> CacheInfo:
    """A :class:`CacheInfo` from the SDK's ``DescribeImageCachesResponseBodyImageCaches``."""
    cache_id = str(model.image_cache_id)
    images: list[str] = []
    for ref in model.images or []:
        try:
            images.append(normalize_image(str(ref)))
        except InvalidReference as e:
            caches_logger.warning("image cache %s holds an image we cannot match: %s",
                                  cache_id, e, extra={"cache": cache_id})
    return CacheInfo(
        cache_id=cache_id, name=str(model.image_cache_name or ""),
        status=str(model.status or ""), images=tuple(dict.fromkeys(images)),
        size_gib=int(model.image_cache_size or 0),
        created_at=parse_time(model.creation_time) or 0.0,
        expires_at=parse_time(model.expire_date_time),
        progress=str(model.progress or ""), snapshot_id=str(model.snapshot_id or ""),
        tags=tuple(sorted((str(t.key), str(t.value or ""))
                          for t in getattr(model, "tags", None) or [] if t.key)))


class CacheCatalog:
    """Image caches by id plus the index that ranks them; see the module docstring."""

    def __init__(self, client: ImageCacheLister, *, metrics: Metrics | None = None,
                 resync_interval: float = 60.0, min_relist_age: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.index = CacheIndex()
        self._client = client
        self._metrics = metrics
        self._caches: dict[str, CacheInfo] = {}
        self._building: set[str] = set()  # ids of caches in a BUILDING status
        self._clock = clock
        # Ages of listings are measured on a monotonic clock: a wall-clock step must neither
        # suppress re-listing nor cause a burst of it.
        self._monotonic = monotonic
        self.resync_interval = resync_interval
        self.min_relist_age = min_relist_age
        self._listing_started: float | None = None  # monotonic; success or failure
        self.listings = 0  # full listings attempted (periodic, first and lookup-triggered)
        self._refreshing: dict[str, asyncio.Future[CacheInfo | None]] = {}
        # Ids refreshed while a full sync was in flight: the sync's (older) listing must not
        # remove them.
        self._touched_during_sync: set[str] | None = None
        self.synced = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self.last_sync_error: str | None = None
        self._phases: set[str] = set(KNOWN_PHASES)
        self._on_ready: list[Callable[[CacheInfo], None]] = []
        # Registries some cache was built with credentials for (docs/IMAGE_CACHES.md).
        self._private = PrivateRegistries()
        # cache id -> (its object's refresh period, last refresh), from the ImageCache
        # controller of this process (observe_refresh); ECI's listing has neither.
        self._refresh: dict[str, tuple[float | None, float | None]] = {}

    def private_registries(self) -> frozenset[str]:
        """Registries some cache of the view was built with credentials for."""
        return self._private.current()

    def __contains__(self, cache_id: object) -> bool:
        return cache_id in self._caches

    def __len__(self) -> int:
        return len(self._caches)

    def get(self, cache_id: str) -> CacheInfo | None:
        return self._caches.get(cache_id)

    def all(self) -> list[CacheInfo]:
        return list(self._caches.values())

    def now(self) -> float:
        return self._clock()

    def building_with(self, images: Sequence[str], now: float) -> list[str]:
        """Ids of caches still being built that hold any of ``images`` (a lookup that misses
        them now might hit them once they are Ready). Few caches build at once, so this scans
        only those."""
        wanted = set(images)
        found: list[str] = []
        for cache_id in sorted(self._building):
            info = self._caches.get(cache_id)
            if info is not None and info.building(now) and not wanted.isdisjoint(info.images):
                found.append(cache_id)
        return found

    def listing_age(self) -> float:
        """Seconds since the last full listing began (whether it succeeded); inf before any."""
        if self._listing_started is None:
            return float("inf")
        return self._monotonic() - self._listing_started

    def stale(self) -> bool:
        """Whether a lookup may ask for a new listing now (see the module docstring)."""
        return self.listing_age() >= self.min_relist_age

    # -- updates ------------------------------------------------------------------------

    def on_ready(self, callback: Callable[[CacheInfo], None]) -> None:
        """Call ``callback(info)`` whenever a cache becomes Ready (pods waiting for it can go)."""
        self._on_ready.append(callback)

    def put(self, info: CacheInfo) -> None:
        """Add or replace one cache (index and record together)."""
        before = self._caches.get(info.cache_id)
        if before is not None:
            self._private.remove(credentialed_registries(before.images, before.tags))
        self._private.add(credentialed_registries(info.images, info.tags))
        self._caches[info.cache_id] = info
        if info.status in BUILDING:
            self._building.add(info.cache_id)
        else:
            self._building.discard(info.cache_id)
        if info.images:
            self.index.upsert(info.cache_id, info.images, size_gib=info.size_gib,
                              created_at=info.created_at, ready=info.status == READY,
                              expires_at=info.expires_at)
        else:
            # A cache without a usable image can never be matched automatically.
            self.index.remove(info.cache_id)
        if self._touched_during_sync is not None:
            self._touched_during_sync.add(info.cache_id)
        now = self._clock()
        if info.ready(now) and (before is None or not before.ready(now)):
            for callback in self._on_ready:
                try:
                    callback(info)
                except Exception:
                    caches_logger.exception("image cache %s: a Ready listener failed",
                                            info.cache_id)

    def drop(self, cache_id: str) -> bool:
        self.index.remove(cache_id)
        self._building.discard(cache_id)
        if self._touched_during_sync is not None:
            self._touched_during_sync.add(cache_id)
        gone = self._caches.pop(cache_id, None)
        if gone is not None:
            self._private.remove(credentialed_registries(gone.images, gone.tags))
        return gone is not None

    def observe(self, model: Any) -> None:
        """A cache state seen elsewhere in the node (an SDK ``DescribeImageCaches`` item): into
        the view at once, so that a decision never waits for the next listing to see it."""
        info = info_from_model(model)
        if self._caches.get(info.cache_id) != info:
            self.put(info)
            self._export()

    def observe_gone(self, cache_id: str) -> None:
        """A cache seen deleted (or found absent) elsewhere in the node."""
        self._refresh.pop(cache_id, None)
        if self.drop(cache_id):
            self._export()

    def observe_refresh(self, cache_id: str, period: float | None,
                        refreshed_at: float | None) -> None:
        """The cache's ImageCache object's own refresh period and last refresh."""
        if period is None and refreshed_at is None:
            self._refresh.pop(cache_id, None)
        else:
            self._refresh[cache_id] = (period, refreshed_at)

    def refresh_of(self, cache_id: str, default_period: float) -> tuple[float, float]:
        """(refresh period, when its content was last pulled) of a cache: its object's own
        period when set, else ``default_period``; its last refresh, else its creation (0:
        unknown)."""
        period, refreshed = self._refresh.get(cache_id, (None, None))
        info = self._caches.get(cache_id)
        built = max(info.created_at if info is not None else 0.0, refreshed or 0.0)
        return (default_period if period is None else period), built

    # -- ECI ----------------------------------------------------------------------------

    async def sync(self) -> None:
        """Replace the catalog with ECI's full (paged) listing. Raises the client's errors."""
        async with self._sync_lock:
            await self._sync_locked()

    async def _sync_locked(self) -> None:
        touched: set[str] = set()
        self._touched_during_sync = touched
        # The listing shows ECI as of (at least) its start: that is its age.
        self._listing_started = self._monotonic()
        self.listings += 1
        try:
            try:
                models = await self._client.describe_image_caches()
            except EciError as e:
                self.last_sync_error = str(e)
                raise
            seen: set[str] = set()
            for model in models:
                info = info_from_model(model)
                seen.add(info.cache_id)
                if info.cache_id in touched:
                    continue  # a refresh during the listing is newer than the listing
                if self._caches.get(info.cache_id) == info:
                    continue  # unchanged: re-listing (now more frequent) stays cheap
                self.put(info)
            for gone in set(self._caches) - seen - touched:
                self.drop(gone)
        finally:
            self._touched_during_sync = None
        self.last_sync_error = None
        self.synced.set()
        self._export()
        caches_logger.debug("image caches synced: %d %s", len(self._caches),
                            sorted((i.cache_id, i.status) for i in self._caches.values()))

    async def ensure_synced(self) -> None:
        """Sync once if no full sync has succeeded yet, so that the first pods after start-up
        are matched against every cache rather than none (concurrent callers share one sync).

        While ECI cannot list, callers within ``min_relist_age`` of the failed attempt get
        :class:`CatalogUnavailable` (with its reason) instead of each trying again.
        """
        if self.synced.is_set():
            return
        async with self._sync_lock:
            if self.synced.is_set():
                return
            if not self.stale() and self.last_sync_error is not None:
                raise CatalogUnavailable("ImageCacheListingFailed", self.last_sync_error)
            await self._sync_locked()

    async def relist_if_stale(self) -> bool:
        """List every cache again unless a listing began less than ``min_relist_age`` ago.

        True when this call listed. Concurrent callers share one listing: they wait for the
        one in flight and then find it fresh. Raises the client's errors (the caller keeps
        deciding with the view it has).
        """
        if not self.stale():
            if self._sync_lock.locked():
                # A listing is in flight (its start is what made the view "fresh"): its answer
                # is the fresh view, so wait for it rather than decide on the one it replaces.
                async with self._sync_lock:
                    pass
            return False
        async with self._sync_lock:
            if not self.stale():
                return False  # a listing ran while we waited: it is fresh enough
            await self._sync_locked()
        return True

    async def refresh_one(self, cache_id: str) -> CacheInfo | None:
        """Ask ECI for one cache now; None (and forgotten) when ECI has no such cache.

        Concurrent refreshes of one id share a single call (a burst of pods naming a new cache
        costs one request).
        """
        pending = self._refreshing.get(cache_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CacheInfo | None] = asyncio.get_running_loop().create_future()
        self._refreshing[cache_id] = future
        try:
            try:
                models = await self._client.describe_image_caches(ids=[cache_id])
            except NotFound:
                models = []
            info: CacheInfo | None = None
            for model in models:
                if str(model.image_cache_id) == cache_id:
                    info = info_from_model(model)
            if info is None:
                self.drop(cache_id)
            else:
                self.put(info)
            self._export()
            future.set_result(info)
            return info
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved here so a lone caller leaves no "never retrieved"
            raise
        finally:
            del self._refreshing[cache_id]

    async def run(self) -> None:
        """Re-sync forever every ``resync_interval`` seconds; errors are logged, not fatal."""
        while True:
            try:
                await self.sync()
            except EciError as e:
                self.last_sync_error = str(e)
                caches_logger.warning("image cache re-sync failed, keeping the last view: %s", e)
            await asyncio.sleep(self.resync_interval)

    def _export(self) -> None:
        if self._metrics is None:
            return
        now = self._clock()
        counts = Counter(info.state(now) or "Unknown" for info in self._caches.values())
        # Phases seen before stay exported (at 0) so that a series never goes stale.
        self._phases.update(counts)
        for phase in self._phases:
            self._metrics.image_caches.labels(phase=phase).set(counts.get(phase, 0))
