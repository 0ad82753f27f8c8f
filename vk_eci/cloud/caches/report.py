"""What a pod reports about its image cache is what ECI says it used (docs/IMAGE_CACHES.md).

The node's choice (:mod:`vk_eci.cloud.caches.choice`) is only a request: ECI may use the named
cache, match server-side (``AutoMatchImageCache``) or use none. Its group events say which:
``SuccessfulHitImageCache`` names the cache (``imc-…``, or on real ECI sometimes the cache's
snapshot ``s-…``); ``ImageCacheMissed`` says none. A group created with neither
``ImageSnapshotId`` nor ``AutoMatchImageCache`` cannot use a cache: it is reported as soon as
ECI lists it.

Once per pod (created by this process), the report sets ``vk-eci.io/image-cache``,
``vk-eci.io/image-cache-match`` (the pod's images the used cache holds) and
``vk-eci.io/image-cache-chosen-by`` (``node`` when the node named the cache or asked for none,
``eci`` when ECI matched server-side), and counts ``vk_eci_image_cache_results_total`` by
result and chooser. When ECI used another cache than the node chose (or one when the node chose
none), that is a Warning event ``ImageCacheDisagreement`` and
``vk_eci_image_cache_disagreements_total``: the node's view of the caches was wrong.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vk_eci.cloud.api.errors import EciError
from vk_eci.cloud.caches.annotations import CHOSEN_CACHE_ANNOTATION, CHOSEN_MATCH_ANNOTATION
from vk_eci.cloud.caches.catalog import CacheCatalog, CacheInfo
from vk_eci.cloud.groups.allocated import MATCHED_CACHE
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.log import caches_logger
from vk_eci.metrics import Metrics
from vk_eci.provider import EventRecorder

CHOSEN_BY_ANNOTATION = "vk-eci.io/image-cache-chosen-by"
ECI_HIT = "SuccessfulHitImageCache"
ECI_MISSED = "ImageCacheMissed"
DISAGREEMENT = "ImageCacheDisagreement"
PENDING_LIMIT = 20_000  # pods awaiting ECI's word (a few hundred bytes each)
RESOLVE_ATTEMPTS = 5  # listings to wait for a cache ECI named but the node cannot find
_CACHE_REF = re.compile(r"\b((?:imc|s)-[a-z0-9]+)", re.IGNORECASE)

Annotate = Callable[[Any, Mapping[str, str]], Awaitable[None]]
# Told of every report (the cache advisor's observation): the pod, what the node asked, ECI's word.
Listener = Callable[[Any, "Expected", "Report"], None]


@dataclass(frozen=True)
class Expected:
    """What the node asked of ECI for one pod."""

    images: tuple[str, ...]  # the pod's distinct normalised images
    node_choice: str | None  # the cache the node named (ImageSnapshotId), None: none
    server_side: bool  # AutoMatchImageCache was sent
    attempts: int = 0  # listings at which ECI's cache could not be found
    # Registries the pod's own pull secrets had credentials for (the advisor keeps a cache of
    # those images to the pod's namespace, docs/ADVISOR.md "Private images").
    credentialed: frozenset[str] = frozenset()
    # ECI's word once an answer's events said it (the cache it named, if any): the node keeps
    # a group's events only until they are copied, so a report that must wait (a cache not
    # found yet) still has it when the group is seen again without them.
    said: bool = False
    ref: str | None = None

    @property
    def chosen_by(self) -> str:
        return "eci" if self.server_side else "node"

    @property
    def asked(self) -> bool:
        return self.node_choice is not None or self.server_side


@dataclass(frozen=True)
class Report:
    """The cache ECI used for one pod, as the pod shows it."""

    cache_id: str | None
    matched: int
    total: int
    chosen_by: str

    @property
    def result(self) -> str:
        if self.cache_id is None or not self.matched:
            return "miss"
        return "hit" if self.matched == self.total else "partial"

    def annotations(self) -> dict[str, str]:
        out = {CHOSEN_CACHE_ANNOTATION: self.cache_id or "none",
               CHOSEN_MATCH_ANNOTATION: f"{self.matched}/{self.total}",
               CHOSEN_BY_ANNOTATION: self.chosen_by}
        if self.cache_id:
            out[MATCHED_CACHE] = self.cache_id
        return out


def ecis_word(events: Sequence[GroupEvent]) -> tuple[bool, str | None]:
    """(whether ECI said which cache it used, the ``imc-``/``s-`` reference it named)."""
    for event in events:
        if event.reason == ECI_HIT:
            found = _CACHE_REF.search(event.message)
            return True, found.group(1) if found else None
    if any(event.reason == ECI_MISSED for event in events):
        return True, None
    return False, None


def _uid(pod: Any) -> str:
    meta = pod.metadata
    return str(meta.uid or f"{meta.namespace}/{meta.name}")


class CacheReporter:
    """See the module docstring; ``expect`` at create time, ``group_events`` on every listing."""

    def __init__(self, catalog: CacheCatalog, recorder: EventRecorder, *,
                 metrics: Metrics | None = None) -> None:
        self.catalog = catalog
        self.recorder = recorder
        self.metrics = metrics
        self.annotate: Annotate | None = None
        self.listeners: list[Listener] = []
        self._pending: OrderedDict[str, Expected] = OrderedDict()

    def expect(self, pod: Any, expected: Expected) -> None:
        """Remember what the node asked for ``pod`` (a retried create replaces it)."""
        key = _uid(pod)
        self._pending.pop(key, None)
        while len(self._pending) >= PENDING_LIMIT:
            self._pending.popitem(last=False)
        self._pending[key] = expected

    async def group_events(self, pod: Any, events: Sequence[GroupEvent]) -> None:
        """The pod's group as ECI lists it, with its events: report once ECI has said."""
        expected = self._pending.get(_uid(pod))
        if expected is None:
            return
        said, ref = ecis_word(events)
        if said and (not expected.said or ref != expected.ref):
            expected = self._pending[_uid(pod)] = replace(expected, said=True, ref=ref)
        elif not said and expected.said:
            said, ref = True, expected.ref
        if expected.asked and not said:
            return  # not yet
        info: CacheInfo | None = None
        if ref is not None:
            try:
                info = await self._resolve(ref)
            except EciError as e:
                caches_logger.warning("cannot look up image cache %s that ECI used: %s; "
                                      "trying again at the next listing", ref, e)
                return
            if info is None:
                # Never guess a result: wait for a listing that shows the cache, then give up.
                attempts = expected.attempts + 1
                if attempts < RESOLVE_ATTEMPTS:
                    self._pending[_uid(pod)] = replace(expected, attempts=attempts)
                    return
                caches_logger.warning("ECI says pod %s/%s started from image cache %s, which "
                                      "the node cannot find; not reported",
                                      pod.metadata.namespace, pod.metadata.name, ref)
                self._pending.pop(_uid(pod), None)
                return
        self._pending.pop(_uid(pod), None)
        cache_id = info.cache_id if info is not None else ref
        matched = len(set(expected.images) & set(info.images)) if info is not None else 0
        await self._report(pod, expected, Report(cache_id, matched, len(expected.images),
                                                 expected.chosen_by))

    async def _resolve(self, ref: str) -> CacheInfo | None:
        """The cache ECI named: by id (asked for at once when unknown) or, as real ECI may
        name it, by its snapshot ``s-…`` (re-listing when no known cache has it)."""
        if not ref.lower().startswith("s-"):
            return self.catalog.get(ref) or await self.catalog.refresh_one(ref)
        for attempt in range(2):
            for info in self.catalog.all():
                if info.snapshot_id == ref:
                    return info
            if attempt == 0 and not await self.catalog.relist_if_stale():
                return None
        return None

    async def _report(self, pod: Any, expected: Expected, report: Report) -> None:
        ref = f"{pod.metadata.namespace}/{pod.metadata.name}"
        caches_logger.info("ECI used image cache %s for pod (%s, %s/%s, chosen by %s)",
                           report.cache_id or "none", report.result, report.matched,
                           report.total, report.chosen_by, extra={"pod": ref})
        if self.metrics is not None:
            self.metrics.image_cache_results.labels(result=report.result,
                                                    chosen_by=report.chosen_by).inc()
        for listener in self.listeners:
            try:
                listener(pod, expected, report)
            except Exception:  # an observer's problem is not the pod's
                caches_logger.exception("a listener of image-cache reports failed",
                                        extra={"pod": ref})
        if report.cache_id != expected.node_choice and (expected.node_choice or report.cache_id):
            if self.metrics is not None:
                self.metrics.image_cache_disagreements.inc()
            message = (f"the node chose image cache {expected.node_choice or 'none'} but ECI "
                       f"used {report.cache_id or 'none'} ({report.matched}/{report.total} "
                       f"images); the pod shows what ECI used")
            caches_logger.warning(message, extra={"pod": ref, "reason": DISAGREEMENT})
            await self.recorder.record(pod, "Warning", DISAGREEMENT, message)
        if self.annotate is None:
            return
        try:
            await self.annotate(pod, report.annotations())
        except Exception as e:
            caches_logger.warning("could not record the image cache ECI used on pod %s: %s",
                                  ref, e, extra={"pod": ref})
