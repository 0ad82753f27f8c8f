"""What the node observes of its pods, for the cache advisor.

Two sources, both already flowing through the node:

- **ECI's word on the cache** (:class:`vk_eci.cloud.caches.report.CacheReporter`), once per pod
  the node created: the pod's distinct normalised images, and whether ECI used a cache holding
  all of them. Only pods that ask for **automatic** match count as demand: a cache the advisor
  builds can serve no other pod (an explicit pod names its cache, a pod without annotation
  starts without any). Each counts once, with its owning workload.
- **ECI's pull events** (copied onto the pod on every listing of its group): kubelet's
  ``Successfully pulled image "X" in 1.234s (…). Image size: N bytes.`` — the duration and the
  size when present; an older ``Successfully pulled image "X"`` without a duration is timed
  from the image's ``Pulling`` event. Every pod's uncached pulls count (a pull's time says what
  a cache would save whoever pulled), each (pod, image) once. ``already present on machine``
  is not a pull.

When a pod started from a cache the advisor owns, the pull seconds it avoided (the mean
uncached pull of each image the cache gave it) are the advisor's realised savings.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from matcher import InvalidReference, normalize_image
from vk_eci.advisor.record import DemandRecord
from vk_eci.cloud.caches.annotations import parse_cache_request
from vk_eci.cloud.caches.provenance import registry_of
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.cloud.placement.values import annotations_of
from vk_eci.metrics import Metrics

__all__ = ["PodObserver", "Pull", "go_duration", "pulls_of", "workload_of"]

PODS_LIMIT = 5_000  # pods whose counted pulls are remembered (a few images each)
_PULLED = re.compile(r'^Successfully pulled image "(?P<image>[^"]+)"'
                     r'(?: in (?P<duration>[0-9.]+(?:[a-zµ]+[0-9.]*)*[a-zµ]+))?')
_SIZE = re.compile(r"Image size: (?P<bytes>\d+) bytes")
_PULLING = re.compile(r'^Pulling image "(?P<image>[^"]+)"')
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
             "h": 3600.0}

# (cache id) -> the images of that cache when the advisor owns it, else None.
OwnedCaches = Callable[[str], Sequence[str] | None]


def go_duration(text: str) -> float | None:
    """Seconds of a Go ``time.Duration`` string (``1.5s``, ``2m3.25s``, ``850ms``), or None."""
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


@dataclass(frozen=True, slots=True)
class Pull:
    """One uncached pull ECI reported: the normalised image, seconds, and size when said."""

    image: str
    seconds: float
    size_bytes: int | None = None


def _normalised(ref: str) -> str | None:
    try:
        return normalize_image(ref)
    except InvalidReference:
        return None


def pulls_of(events: Iterable[GroupEvent]) -> list[Pull]:
    """The uncached pulls a group's events report (see the module docstring)."""
    pulling: dict[str, Any] = {}
    out: list[Pull] = []
    for event in events:
        if event.reason == "Pulling":
            m = _PULLING.match(event.message)
            if m is not None and event.first is not None:
                pulling.setdefault(m.group("image"), event.first)
            continue
        if event.reason != "Pulled":
            continue
        m = _PULLED.match(event.message)
        if m is None:
            continue  # "already present on machine": nothing was pulled
        image = _normalised(m.group("image"))
        if image is None:
            continue
        seconds: float | None = None
        if m.group("duration"):
            seconds = go_duration(m.group("duration"))
        elif event.first is not None and m.group("image") in pulling:
            seconds = (event.first - pulling[m.group("image")]).total_seconds()
        if seconds is None or seconds < 0:
            continue
        size = _SIZE.search(event.message)
        out.append(Pull(image, seconds, int(size.group("bytes")) if size else None))
    return out


def workload_of(pod: Any) -> str | None:
    """``namespace/Kind/name`` of the pod's controller; a ReplicaSet made by a Deployment (its
    name is the Deployment's plus ``-<pod-template-hash>``) is named as that Deployment."""
    meta = pod.metadata
    for ref in meta.owner_references or []:
        if not ref.controller:
            continue
        kind, name = ref.kind, ref.name
        template_hash = (meta.labels or {}).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
            kind, name = "Deployment", name[:-len(template_hash) - 1]
        return f"{meta.namespace}/{kind}/{name}"
    return None


def pull_secret_names(pod: Any) -> tuple[str, ...]:
    """The names of the pod's ``imagePullSecrets`` (names only: the node never keeps their
    content)."""
    refs = getattr(getattr(pod, "spec", None), "image_pull_secrets", None) or []
    return tuple(dict.fromkeys(str(r.name) for r in refs if getattr(r, "name", None)))


def asks_automatic(pod: Any) -> bool:
    """Whether the pod asks ECI/the node to match a cache automatically (and names none)."""
    return parse_cache_request(annotations_of(pod)).mode == "auto"


class PodObserver:
    """Feeds a :class:`DemandRecord` from the node's pods.

    ``group_events`` is the provider's hook on every listing of a pod's group; ``reported`` is
    the :class:`~vk_eci.cloud.caches.report.CacheReporter`'s listener, called once per pod with
    what the node asked and the cache ECI used. ``owned`` says which caches are the advisor's.
    """

    def __init__(self, record: DemandRecord, *, metrics: Metrics | None = None,
                 owned: OwnedCaches | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.record = record
        self.metrics = metrics
        self.owned: OwnedCaches = owned or (lambda _cache_id: None)
        self.clock = clock
        self._counted: OrderedDict[str, set[str]] = OrderedDict()

    async def group_events(self, pod: Any, events: Sequence[GroupEvent]) -> None:
        pulls = pulls_of(events)
        if not pulls:
            return
        uid = str(pod.metadata.uid or f"{pod.metadata.namespace}/{pod.metadata.name}")
        counted = self._counted.get(uid)
        if counted is None:
            while len(self._counted) >= PODS_LIMIT:
                self._counted.popitem(last=False)
            counted = self._counted[uid] = set()
        now = self.clock()
        for pull in pulls:
            if pull.image in counted:
                continue
            counted.add(pull.image)
            self.record.add_pull(pull.image, pull.seconds, now, size_bytes=pull.size_bytes)

    def reported(self, pod: Any, images: Sequence[str], cache_id: str | None,
                 result: str, credentialed: frozenset[str] = frozenset()) -> None:
        """ECI's word on one pod: ``images`` (normalised), the cache it used, ``result``
        (hit/partial/miss); ``credentialed``: the registries its own pull secrets had
        credentials for (its images of those are private to its namespace)."""
        if asks_automatic(pod):
            self.record.add_pod(images, self.clock(), workload=workload_of(pod),
                                hit=result == "hit",
                                private=[i for i in images if registry_of(i) in credentialed],
                                namespace=str(pod.metadata.namespace or ""),
                                secrets=pull_secret_names(pod) if credentialed else ())
        if cache_id is None or result == "miss":
            return
        held = self.owned(cache_id)
        if held is None:
            return
        served = set(images) & set(held)
        saved = sum(self.record.mean_pull_seconds(i) or 0.0 for i in served)
        if self.metrics is not None:
            self.metrics.advisor_hits.inc()
            self.metrics.advisor_realised_savings.inc(saved)
