"""ImageCache reconcile, step create/adopt: an object without an ECI cache gets one.

Before creating, a cache of the same name is looked up and adopted (ours, tagged with the
object's UID, first), so a crash between the create and the status write never leaves a
duplicate; the create carries ``ClientToken`` = the UID. A cache gone from ECI is said once
(:func:`lost`); a new generation of the object builds a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vk_eci.cloud.errors import NotFound, Permanent
from vk_eci.cluster import imagecache_status as st
from vk_eci.cluster.imagecache_observe import Seen, tags
from vk_eci.cluster.imagecache_spec import TAG_UID, ImageCacheSpec, SecretError, create_request

if TYPE_CHECKING:
    from vk_eci.cluster.imagecaches import ImageCacheController


async def create_or_adopt(ctl: ImageCacheController, obj: dict[str, Any], spec: ImageCacheSpec,
                          status: Mapping[str, Any]) -> float | None:
    existing = [c for c in await ctl.eci.describe_image_caches(name=spec.eci_name)
                if c.image_cache_name == spec.eci_name]
    ours = [c for c in existing if tags(c).get(TAG_UID) == spec.uid]
    candidates = ours or existing
    if candidates:
        # Prefer a usable cache over a failed one, then the newest.
        candidates.sort(key=lambda c: (c.status != st.FAILED, c.creation_time or ""))
        cache = candidates[-1]
        ctl.view.caches[cache.image_cache_id] = Seen(cache, asyncio.get_running_loop().time())
        ctl.view.saw(cache)
        new = st.status_from_cache(cache, status, st.now())
        # A cache we created already holds this generation; someone else's may need an update.
        new["observedGeneration"] = spec.generation if ours else 0
        obj = await ctl.patch_status(obj, st.merge_patch(status, new))
        if not ours:
            await ctl.event(obj, "Normal", "Adopted",
                            f"adopted the existing ECI image cache {cache.image_cache_id} "
                            f"of the same name {spec.eci_name}")
        else:
            await ctl.event(obj, "Normal", "Recovered",
                            f"found ECI image cache {cache.image_cache_id} created for "
                            f"this object")
        return None
    try:
        creds = await ctl.credentials(spec)
    except SecretError as e:
        return await ctl.invalid(obj, status, "InvalidImagePullSecret", str(e),
                                 ctl.settings.secret_retry)
    try:
        cache_id = await ctl.eci.create_image_cache(
            create_request(spec, creds, ctl.settings.placement))
    except NotFound:
        raise
    except Permanent as e:
        return await ctl.invalid(obj, status, "CreateFailed",
                                 f"ECI refused to create image cache {spec.eci_name}: {e}",
                                 ctl.settings.create_retry)
    ctl.view.acted(spec.name)
    now = st.format_time(st.now())
    await ctl.patch_status(obj, {
        "phase": st.CREATING, "progress": "0%", "imageCacheId": cache_id,
        "imageCacheName": spec.eci_name, "startTime": now, "lastUpdatedTime": now,
        "observedGeneration": spec.generation, "reason": None, "message": None,
        # Built from the whole spec: no earlier refusal still holds.
        "conditions": None,
    })
    await ctl.event(obj, "Normal", "Created",
                    f"created ECI image cache {cache_id} of {len(spec.images)} image(s), "
                    f"{spec.size_gib} GiB")
    return None


async def lost(ctl: ImageCacheController, obj: dict[str, Any], spec: ImageCacheSpec,
               status: Mapping[str, Any]) -> float | None:
    """The ECI cache is gone: say so once; a new generation of the object builds a new one."""
    if status.get("phase") in st.GONE:
        if spec.generation > int(status.get("observedGeneration") or 0):
            obj = await ctl.patch_status(obj, {"imageCacheId": None})
            return await create_or_adopt(ctl, obj, spec, obj.get("status") or {})
        return None
    new = st.gone_status(status, st.now())
    await ctl.patch_status(obj, new)
    await ctl.event(obj, "Warning", new["phase"], new["message"])
    return None
