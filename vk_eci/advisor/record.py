"""The node's bounded record of demand per distinct image set (the advisor's observation).

Pods per image set are an exponentially decayed count with time constant ``window_hours``:
each pod adds 1 and the count decays by ``exp(-dt / window)``, so a steady rate *r* converges to
*r* x window. ``demand`` divides by the *effective* window ``window x (1 - exp(-age / window))``
(``age``: how long the record has been observing), which is exactly *r* for a steady rate from
the first hour on, instead of under-reporting a young record. Old demand fades, a burst is
remembered for about one window, and nothing needs a timestamp per pod.

Pull seconds are per image (an image pulls in the same time whatever set it is in): a running
mean over the last ``PULL_SAMPLES`` uncached pulls ECI reported. Size is per image too, when an
event said it.

Bounded: at most ``max_sets`` sets (the one with the least decayed demand, then the least
recently seen, is forgotten first), ``max_workloads`` owners per set (most recent first), and
image statistics only for images of remembered sets plus ``max_sets`` others (least recently
seen forgotten first). Times are wall-clock seconds (the record outlives the process).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from vk_eci.advisor.model import ImageSetDemand

__all__ = ["DemandRecord", "ImageStat", "SetRecord"]

PULL_SAMPLES = 20  # the mean of about the last 20 pulls: follows a registry that got slower
PRIVATE_NAMESPACES = 5  # namespaces remembered per private image
GIB = float(1 << 30)


@dataclass(slots=True)
class SetRecord:
    """One distinct image set: its decayed pod count as of ``at``, decayed hits likewise."""

    images: tuple[str, ...]
    pods: float
    hits: float
    at: float
    last_seen: float
    workloads: list[str] = field(default_factory=list)

    def decayed(self, now: float, window_s: float) -> tuple[float, float]:
        """(pods, hits) decayed to ``now``."""
        factor = math.exp(-max(0.0, now - self.at) / window_s)
        return self.pods * factor, self.hits * factor


@dataclass(slots=True)
class ImageStat:
    """What the node saw of one image: mean uncached pull seconds and its size if known."""

    pull_seconds: float = 0.0
    pulls: int = 0
    size_gib: float | None = None
    last_seen: float = 0.0
    # Namespaces whose pods pulled it with credentials for its registry, each with the pull
    # secrets they named (most recent first, at most PRIVATE_NAMESPACES): a cache of it is
    # built with one of them, and is that namespace's (docs/ADVISOR.md, "Private images").
    private: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def saw_private(self, namespace: str, secrets: tuple[str, ...]) -> None:
        self.private.pop(namespace, None)
        self.private = {namespace: secrets, **self.private}
        for extra in list(self.private)[PRIVATE_NAMESPACES:]:
            del self.private[extra]


class DemandRecord:
    """See the module docstring. Not thread-safe; used from the event loop only."""

    def __init__(self, *, window_hours: float = 6.0, max_sets: int = 500,
                 max_workloads: int = 5, since: float | None = None) -> None:
        if window_hours <= 0 or max_sets < 1 or max_workloads < 0:
            raise ValueError("window_hours > 0, max_sets >= 1 and max_workloads >= 0")
        self.window_hours = window_hours
        self.max_sets = max_sets
        self.max_workloads = max_workloads
        self.since = since  # first observation; None: nothing observed yet
        self.sets: dict[tuple[str, ...], SetRecord] = {}
        self.images: dict[str, ImageStat] = {}
        self._trim_at = 4 * max_sets
        self.changes = 0  # bumped on every change (the store saves only a changed record)

    @property
    def window_s(self) -> float:
        return self.window_hours * 3600.0

    def add_pod(self, images: Iterable[str], now: float, *, workload: str | None = None,
                hit: bool = False, private: Iterable[str] = (), namespace: str = "",
                secrets: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Count one pod start with these (normalised) images; returns the set's key.
        ``private``: those of its images the pod pulled with its own credentials, which were
        in the pull secrets ``secrets`` of ``namespace``."""
        key = tuple(sorted(set(images)))
        if not key:
            return key
        self._begin(now)
        rec = self.sets.get(key)
        if rec is None:
            if len(self.sets) >= self.max_sets:
                self._evict_set(now)
            rec = self.sets[key] = SetRecord(key, 0.0, 0.0, now, now)
        pods, hits = rec.decayed(now, self.window_s)
        rec.pods, rec.hits = pods + 1.0, hits + (1.0 if hit else 0.0)
        rec.at = rec.last_seen = now
        if workload and self.max_workloads:
            if workload in rec.workloads:
                rec.workloads.remove(workload)
            rec.workloads.insert(0, workload)
            del rec.workloads[self.max_workloads:]
        for image in key:
            self._stat(image, now)
        if namespace and secrets:
            for image in set(private) & set(key):
                self.images[image].saw_private(namespace, secrets)
        self.changes += 1
        return key

    def private_of(self, image: str) -> dict[str, tuple[str, ...]]:
        """Namespace -> pull secrets, for an image pulled with credentials (empty: public)."""
        stat = self.images.get(image)
        return dict(stat.private) if stat is not None else {}

    def add_pull(self, image: str, seconds: float, now: float, *,
                 size_bytes: int | None = None) -> None:
        """One uncached pull of ``image`` that took ``seconds`` (ECI's word)."""
        if seconds < 0 or not math.isfinite(seconds):
            return
        self._begin(now)
        stat = self._stat(image, now)
        stat.pulls = min(stat.pulls + 1, PULL_SAMPLES)
        stat.pull_seconds += (seconds - stat.pull_seconds) / stat.pulls
        if size_bytes is not None and size_bytes > 0:
            stat.size_gib = size_bytes / GIB
        self.changes += 1

    def mean_pull_seconds(self, image: str) -> float | None:
        stat = self.images.get(image)
        return stat.pull_seconds if stat is not None and stat.pulls else None

    def effective_window_hours(self, now: float) -> float:
        """The window a steady rate's decayed count corresponds to (see the module docstring)."""
        if self.since is None:
            return self.window_hours
        age = max(0.0, now - self.since)
        return self.window_hours * -math.expm1(-age / self.window_s)

    def demand(self, now: float) -> list[ImageSetDemand]:
        """Every remembered set as planning reads it, most demanded first."""
        window = self.effective_window_hours(now)
        if window <= 0:
            return []
        out: list[ImageSetDemand] = []
        for rec in self.sets.values():
            pods, _ = rec.decayed(now, self.window_s)
            pulls = {i: s.pull_seconds for i in rec.images
                     if (s := self.images.get(i)) is not None and s.pulls}
            sizes = {i: s.size_gib for i in rec.images
                     if (s := self.images.get(i)) is not None and s.size_gib is not None}
            out.append(ImageSetDemand(images=rec.images, pods=pods, window_hours=window,
                                      pull_seconds=pulls, image_gib=sizes,
                                      workloads=tuple(rec.workloads)))
        out.sort(key=lambda d: (-d.pods, d.images))
        return out

    def merge(self, other: DemandRecord) -> None:
        """Fold ``other`` (e.g. the record saved before a restart) into this one."""
        if other.since is not None:
            self.since = other.since if self.since is None else min(self.since, other.since)
        for key, theirs in other.sets.items():
            mine = self.sets.get(key)
            if mine is None:
                if len(self.sets) >= self.max_sets:
                    self._evict_set(max(theirs.at, theirs.last_seen))
                self.sets[key] = SetRecord(key, theirs.pods, theirs.hits, theirs.at,
                                           theirs.last_seen, list(theirs.workloads))
                continue
            at = max(mine.at, theirs.at)
            p1, h1 = mine.decayed(at, self.window_s)
            p2, h2 = theirs.decayed(at, self.window_s)
            mine.pods, mine.hits, mine.at = p1 + p2, h1 + h2, at
            mine.last_seen = max(mine.last_seen, theirs.last_seen)
            merged = mine.workloads + [w for w in theirs.workloads if w not in mine.workloads]
            mine.workloads = merged[:self.max_workloads]
        for image, theirs_stat in other.images.items():
            stat = self.images.get(image)
            if stat is None:
                self.images[image] = ImageStat(theirs_stat.pull_seconds, theirs_stat.pulls,
                                               theirs_stat.size_gib, theirs_stat.last_seen,
                                               dict(theirs_stat.private))
                continue
            # Ours are the more recent: theirs fill the places left.
            older = [(k, v) for k, v in theirs_stat.private.items() if k not in stat.private]
            stat.private = dict([*stat.private.items(), *older][:PRIVATE_NAMESPACES])
            total = stat.pulls + theirs_stat.pulls
            if total:
                stat.pull_seconds = (stat.pull_seconds * stat.pulls
                                     + theirs_stat.pull_seconds * theirs_stat.pulls) / total
            stat.pulls = min(total, PULL_SAMPLES)
            stat.size_gib = stat.size_gib if stat.size_gib is not None else theirs_stat.size_gib
            stat.last_seen = max(stat.last_seen, theirs_stat.last_seen)
        self._trim_images(force=True)
        self.changes += 1

    def copy(self) -> DemandRecord:
        """An independent copy (to encode in a thread while this one keeps observing)."""
        out = DemandRecord(window_hours=self.window_hours, max_sets=self.max_sets,
                           max_workloads=self.max_workloads, since=self.since)
        out.sets = {k: SetRecord(r.images, r.pods, r.hits, r.at, r.last_seen, list(r.workloads))
                    for k, r in self.sets.items()}
        out.images = {i: ImageStat(s.pull_seconds, s.pulls, s.size_gib, s.last_seen,
                                   dict(s.private))
                      for i, s in self.images.items()}
        out.changes = self.changes
        return out

    def drop_least(self, now: float, count: int) -> None:
        """Forget the ``count`` least demanded sets (to fit a size bound)."""
        for _ in range(min(count, len(self.sets))):
            self._evict_set(now)
        self._trim_images(force=True)
        self.changes += 1

    # ---- internals ------------------------------------------------------------------------

    def _begin(self, now: float) -> None:
        if self.since is None:
            self.since = now

    def _stat(self, image: str, now: float) -> ImageStat:
        stat = self.images.get(image)
        if stat is None:
            # The newest entry: trimming forgets older unused images first, never this one.
            stat = self.images[image] = ImageStat(last_seen=now)
            self._trim_images()
        stat.last_seen = max(stat.last_seen, now)
        return stat

    def _evict_set(self, now: float) -> None:
        window = self.window_s

        def weight(rec: SetRecord) -> tuple[float, float]:
            return rec.decayed(now, window)[0], rec.last_seen
        victim = min(self.sets.values(), key=weight)
        del self.sets[victim.images]

    def _trim_images(self, force: bool = False) -> None:
        # Amortised: a trim walks every set, so it runs only once the table doubled since the
        # last one (the table stays within twice its bound: images of sets plus max_sets).
        if not force and len(self.images) <= self._trim_at:
            return
        limit = self.max_sets
        used = {i for key in self.sets for i in key}
        spare = [(s.last_seen, i) for i, s in self.images.items() if i not in used]
        if len(spare) > limit:
            spare.sort()
            for _, image in spare[:len(spare) - limit]:
                del self.images[image]
        self._trim_at = max(2 * len(self.images), 4 * self.max_sets)
