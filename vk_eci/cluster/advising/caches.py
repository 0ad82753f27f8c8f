"""What the cache advisor reads of ImageCache objects and pods, and what it writes: pure.

Ownership: an ImageCache belongs to this node's advisor when its label ``ADVISOR_OWNED_LABEL``
has this node's value (:func:`owner_value`). Anything else — a user's object, another node's
advisor's — is only supply the plan counts on; it is never written to.

When a retired cache may go (:func:`still_used`): ECI needs the cache only while a pod is being
created from it (deleting it does not affect pods already created), and pods keep
choosing it while it ranks best for them. So a retired cache is deleted once none of this
node's pods that chose it (``vk-eci.io/image-cache``, the node's choice and then ECI's word) is
still Pending, and none started from it within the last ``grace`` seconds (one re-plan
interval): the demand has moved to other caches.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from matcher import InvalidReference, normalize_image
from vk_eci.advisor.model import ExistingCache, PlannedCache
from vk_eci.advisor.objects import ObjectError, existing_from_object, is_advisor_owned
from vk_eci.cloud.caches.annotations import CHOSEN_CACHE_ANNOTATION
from vk_eci.cluster.imagecaches.spec import DEFAULT_SIZE_GIB
from vk_eci.log import caches_logger

# Set on an advisor-owned object the plan retired, while pods still use it.
RETIRING_ANNOTATION = "eci.vk-eci.io/advisor-retiring-since"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def owner_value(node_name: str) -> str:
    """The label value naming this node's advisor (a label value holds 63 characters; a longer
    node name is shortened with a hash of the whole)."""
    if _LABEL_VALUE.match(node_name):
        return node_name
    digest = hashlib.sha256(node_name.encode()).hexdigest()[:12]
    return f"{node_name[:50].rstrip('-.')}-{digest}"


def owned(obj: Mapping[str, Any], owner: str) -> bool:
    return is_advisor_owned(obj, owner)


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def images_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    out: set[str] = set()
    for ref in (obj.get("spec") or {}).get("images") or []:
        try:
            out.add(normalize_image(str(ref)))
        except InvalidReference:
            continue  # the controller reports it on the object; planning skips it
    return tuple(sorted(out))


def size_of(obj: Mapping[str, Any]) -> int:
    size = (obj.get("spec") or {}).get("imageCacheSize")
    return int(size) if isinstance(size, int) and not isinstance(size, bool) else DEFAULT_SIZE_GIB


def cache_id_of(obj: Mapping[str, Any]) -> str | None:
    value = (obj.get("status") or {}).get("imageCacheId")
    return str(value) if value else None


def existing_caches(objects: Iterable[Mapping[str, Any]], catalog: Iterable[Any],
                    owner: str, now: float) -> list[ExistingCache]:
    """The caches that exist, as planning sees them: every ImageCache object that can serve
    pods (``objects.existing_from_object``; one it cannot read is skipped, its controller
    reports it on the object) and every Ready, unexpired cache ECI lists that no object stands
    for (made in the console, by the API, or auto-created)."""
    out: list[ExistingCache] = []
    ids: set[str] = set()
    for obj in objects:
        cache_id = cache_id_of(obj)
        if cache_id:
            ids.add(cache_id)
        try:
            cache = existing_from_object(obj, owner)
        except ObjectError as e:
            caches_logger.debug("advisor: %s; not counted as supply", e)
            continue
        if cache is not None:
            out.append(cache)
    for info in catalog:
        if info.cache_id in ids or not info.images or not info.ready(now):
            continue
        out.append(ExistingCache(name=info.name or info.cache_id, images=tuple(info.images),
                                 size_gib=int(info.size_gib or DEFAULT_SIZE_GIB),
                                 created_at=float(info.created_at or 0.0),
                                 advisor_owned=False))
    return out


def owned_images(objects: Iterable[Mapping[str, Any]], owner: str) -> dict[str, tuple[str, ...]]:
    """Cache id -> images of every advisor-owned ImageCache that ECI built."""
    return {cid: images_of(obj) for obj in objects
            if owned(obj, owner) and (cid := cache_id_of(obj))}


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 253 and bool(_NAME.match(name))


def secrets_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(r) for r in (obj.get("spec") or {}).get("imagePullSecrets") or [])


def differs(obj: Mapping[str, Any], planned: PlannedCache) -> bool:
    """Whether the object's spec is not what the plan says (images as a set, size, pull
    secrets)."""
    return (images_of(obj) != tuple(sorted(planned.images)) or size_of(obj) != planned.size_gib
            or sorted(secrets_of(obj)) != sorted(planned.pull_secrets))


def still_used(cache_id: str | None, pods: Iterable[Any], now: float,
               grace: float) -> str | None:
    """Why the cache may not be deleted yet (a pod naming it), or None (see the docstring)."""
    if not cache_id:
        return None  # never built: no pod can have used it
    for pod in pods:
        annotations = pod.metadata.annotations or {}
        if annotations.get(CHOSEN_CACHE_ANNOTATION) != cache_id:
            continue
        ref = f"{pod.metadata.namespace}/{pod.metadata.name}"
        status = pod.status
        phase = status.phase if status is not None else None
        if phase in (None, "Pending"):
            return f"pod {ref} is still starting from it"
        started = status.start_time if status is not None else None
        if phase == "Running" and started is not None and now - started.timestamp() < grace:
            return f"pod {ref} started from it {now - started.timestamp():.0f}s ago"
    return None
