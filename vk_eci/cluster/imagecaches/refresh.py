"""ImageCache reconcile, step refresh and purge, in the manner of kube-fledged's annotations.

A cache built from mutable tags (``:latest``, ``:1``) holds what those tags meant at build time.
On the ImageCache object:

- ``vk-eci.io/refresh-imagecache`` (any value): pull the images again now, through
  ``UpdateImageCache`` with every image (ECI's builder runs again); the annotation is removed
  once the update is accepted, as kube-fledged removes its own;
- ``vk-eci.io/refresh-period`` (``30m``, ``24h``, ``7d``; at least ``10m``): the same whenever
  that long has passed since the cache was built or last refreshed (checked at every poll);
- ``vk-eci.io/purge-imagecache`` (any value): delete the ECI cache and keep the object
  ``Purged``, building nothing, until the annotation is removed (then it is built again).

Only a ``Ready`` (or ``UpdateFailed``) cache can be refreshed, as ECI updates only those; a
refresh asked for meanwhile waits. ``status.lastRefreshTime`` says when the last one started,
``status.purgedTime`` when the cache was last purged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vk_eci.cloud.api.errors import NotFound, Permanent
from vk_eci.cluster.imagecaches import status as st
from vk_eci.cluster.imagecaches.context import StepContext
from vk_eci.cluster.imagecaches.spec import ImageCacheSpec, SecretError, UpdatePlan, update_request

REFRESH = "vk-eci.io/refresh-imagecache"
PURGE = "vk-eci.io/purge-imagecache"
REFRESH_PERIOD = "vk-eci.io/refresh-period"
PURGED = "Purged"
MIN_PERIOD = 600.0
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def refresh_period(annotations: Mapping[str, str] | None) -> float | None:
    """``vk-eci.io/refresh-period`` in seconds (None: not set); ValueError naming it."""
    text = (annotations or {}).get(REFRESH_PERIOD)
    if text is None:
        return None
    m = re.fullmatch(r"([0-9]{1,6})([mhd])", text.strip())
    if not m or int(m.group(1)) * _UNITS[m.group(2)] < MIN_PERIOD:
        raise ValueError(f'annotation {REFRESH_PERIOD}="{text}": expected a period of at least '
                         f"10m such as 30m, 24h or 7d")
    return float(int(m.group(1)) * _UNITS[m.group(2)])


def refresh_due(annotations: Mapping[str, str] | None, status: Mapping[str, Any],
                now: datetime) -> str | None:
    """Why the cache should be refreshed now (None: it should not)."""
    if REFRESH in (annotations or {}):
        return f"asked for by {REFRESH}"
    period = refresh_period(annotations)
    since = st.parse_time(status.get("lastRefreshTime") or status.get("startTime"))
    if period is None or since is None or (now - since).total_seconds() < period:
        return None
    return f"{REFRESH_PERIOD} {annotations and annotations.get(REFRESH_PERIOD)} has passed"


async def refresh(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec, cache: Any,
                  why: str) -> float | None:
    """Pull every image of ``cache`` again (see the module docstring)."""
    try:
        creds = await ctl.credentials(spec)
    except SecretError as e:
        return await ctl.invalid(obj, obj.get("status") or {}, "InvalidImagePullSecret",
                                 str(e), ctl.settings.secret_retry)
    plan = UpdatePlan(images=True, size_gib=None, retention_days=None)
    try:
        await ctl.eci.update_image_cache(update_request(
            cache.image_cache_id, spec, creds, ctl.settings.placement.region_id, plan))
    except NotFound:
        ctl.view.caches.pop(cache.image_cache_id, None)
        return 0.0
    except Permanent as e:
        return await ctl.invalid(obj, obj.get("status") or {}, "RefreshFailed",
                                 f"ECI refused to refresh image cache {cache.image_cache_id}: "
                                 f"{e}", ctl.settings.create_retry)
    ctl.view.acted(spec.name)
    now = st.format_time(st.now())
    obj = await ctl.patch_status(obj, {"phase": st.UPDATING, "lastRefreshTime": now,
                                       "lastUpdatedTime": now})
    await ctl.event(obj, "Normal", "Refreshing", f"pulling the {len(spec.images)} image(s) of "
                    f"ECI image cache {cache.image_cache_id} again ({why})")
    if REFRESH in (obj["metadata"].get("annotations") or {}):
        await ctl.set_annotation(obj, REFRESH, None)
    return None


async def purge(ctl: StepContext, obj: dict[str, Any], status: Mapping[str, Any]) -> None:
    """Delete the object's ECI cache (if any) and keep it ``Purged``."""
    cache_id = status.get("imageCacheId")
    if cache_id:
        with contextlib.suppress(NotFound):
            await ctl.eci.delete_image_cache(cache_id)
        ctl.view.caches.pop(cache_id, None)
        ctl.view.gone(cache_id)
        await ctl.event(obj, "Normal", "Purged", f"deleted ECI image cache {cache_id} "
                        f"({PURGE}); nothing is built until the annotation is removed")
    if status.get("phase") != PURGED or cache_id:
        now = st.format_time(st.now())
        await ctl.patch_status(obj, {"imageCacheId": None, "phase": PURGED, "progress": "0%",
                                     "images": None, "snapshotId": None, "events": None,
                                     "expireDateTime": None, "reason": None, "message": None,
                                     "lastUpdatedTime": now, "purgedTime": now})
