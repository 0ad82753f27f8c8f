"""ImageCache objects as the advisor writes and reads them (pure).

An advisor-owned ImageCache carries the label ``ADVISOR_OWNED_LABEL: <owner>`` (the advisor never
updates or deletes an object without it) and two annotations saying why it exists: the pull
seconds per day it is expected to save and the workloads that benefit. The owner is the node
whose advisor made it (``vk-eci run --imagecache-advisor=apply``: its node name, see
``vk_eci.cluster.advising.caches.owner_value``), so that the advisors of several nodes each
change only their own caches and count the others' as supply; ``vk-eci advise`` writes
``"true"``, which no node's advisor owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vk_eci.advisor.model import ADVISOR_OWNED_LABEL, ExistingCache, PlannedCache

__all__ = [
    "API_VERSION",
    "SAVED_ANNOTATION",
    "WORKLOADS_ANNOTATION",
    "ObjectError",
    "existing_from_object",
    "imagecache_object",
    "is_advisor_owned",
    "reasons",
    "spec_of",
]

API_VERSION = "eci.alibabacloud.com/v1"
SAVED_ANNOTATION = "eci.vk-eci.io/advisor-saved-seconds-per-day"
WORKLOADS_ANNOTATION = "eci.vk-eci.io/advisor-workloads"
_DEFAULT_SIZE_GIB = 20  # the CRD's default for imageCacheSize
_MAX_WORKLOADS = 10  # annotations stay short; the plan table lists them all
OWNER = "true"  # the label value of objects `vk-eci advise` prints


class ObjectError(ValueError):
    """An ImageCache object planning cannot read (the message names it and why)."""


def imagecache_object(cache: PlannedCache, owner: str = OWNER) -> dict[str, Any]:
    """The ImageCache object of a planned cache (create, keep or update)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ImageCache",
        "metadata": {
            "name": cache.name,
            "labels": {ADVISOR_OWNED_LABEL: owner},
            "annotations": reasons(cache),
        },
        "spec": spec_of(cache),
    }


def spec_of(cache: PlannedCache) -> dict[str, Any]:
    """The object's spec: images, size and, for a cache of one namespace's private images,
    that namespace's pull secrets (advisor/scope.py)."""
    spec: dict[str, Any] = {"images": list(cache.images), "imageCacheSize": cache.size_gib}
    if cache.pull_secrets:
        spec["imagePullSecrets"] = list(cache.pull_secrets)
    return spec


def reasons(cache: PlannedCache) -> dict[str, str]:
    """The annotations saying why the cache exists."""
    return {SAVED_ANNOTATION: f"{cache.saved_seconds_per_day:.0f}",
            WORKLOADS_ANNOTATION: ",".join(cache.workloads[:_MAX_WORKLOADS])}


def is_advisor_owned(obj: Mapping[str, Any], owner: str = OWNER) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(ADVISOR_OWNED_LABEL) == owner)


def _timestamp(text: Any, name: str) -> float:
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ObjectError(f"ImageCache {name}: creationTimestamp {text!r} is not a time") from None


def existing_from_object(obj: Mapping[str, Any], owner: str = OWNER) -> ExistingCache | None:
    """What planning needs of an ImageCache object; None for one that cannot serve pods
    (a failed build, or one being deleted)."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError("ImageCache without metadata.name")
    spec = obj.get("spec") or {}
    images = spec.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        raise ObjectError(f"ImageCache {name}: spec.images must be a non-empty list of strings")
    size = spec.get("imageCacheSize", _DEFAULT_SIZE_GIB)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ObjectError(f"ImageCache {name}: spec.imageCacheSize {size!r} is not a size in GiB")
    phase = (obj.get("status") or {}).get("phase")
    if meta.get("deletionTimestamp") or phase == "Failed":
        return None
    created = _timestamp(meta.get("creationTimestamp"), name)
    return ExistingCache(name, tuple(images), size, created, is_advisor_owned(obj, owner))
