"""ImageCache reconcile, step create/adopt: an object without an ECI cache gets one.

Before creating, a cache of the same name is looked up and adopted when its tags prove it was
made for this object (:mod:`~vk_eci.cluster.imagecaches.owner`), so a crash between the create and
the status write never leaves a duplicate; the create carries ``ClientToken`` = the UID. A
same-named cache that is not ours is left alone and reported; the object gets its own. A status
naming a cache that is not ours is reported and replaced (:func:`disown`). A cache gone from ECI
is said once (:func:`lost`); a new generation of the object builds a new one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

from vk_eci.cloud.api.errors import NotFound, Permanent
from vk_eci.cluster.imagecaches import owner
from vk_eci.cluster.imagecaches import status as st
from vk_eci.cluster.imagecaches.context import StepContext
from vk_eci.cluster.imagecaches.observe import Seen
from vk_eci.cluster.imagecaches.spec import ImageCacheSpec, SecretError, create_request


async def create_or_adopt(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec,
                          status: Mapping[str, Any]) -> float | None:
    existing = [c for c in await ctl.eci.describe_image_caches(name=spec.eci_name)
                if c.image_cache_name == spec.eci_name]
    why = {c.image_cache_id: ctl.not_ours(c, spec.name, spec.uid) for c in existing}
    ours = [c for c in existing if why[c.image_cache_id] is None]
    if ours:
        # Prefer a usable cache over a failed one, then the newest.
        ours.sort(key=lambda c: (c.status != st.FAILED, c.creation_time or ""))
        cache = ours[-1]
        ctl.view.caches[cache.image_cache_id] = Seen(cache, asyncio.get_running_loop().time())
        ctl.view.saw(cache)
        new = st.status_from_cache(cache, status, st.now())
        new["observedGeneration"] = spec.generation  # we created it from this generation
        obj = await ctl.patch_status(obj, st.merge_patch(status, new))
        await ctl.event(obj, "Normal", "Recovered",
                        f"found ECI image cache {cache.image_cache_id} created for "
                        f"this object")
        return None
    for cache in existing:
        obj = await owner.report(
            ctl, obj, "NameInUse",
            f"ECI image cache {cache.image_cache_id} is also named {spec.eci_name} but is not "
            f"this object's ({why[cache.image_cache_id]}): not adopted, left untouched; "
            f"building this object's own")
    status = obj.get("status") or {}
    try:
        creds = await ctl.credentials(spec)
    except SecretError as e:
        return await ctl.invalid(obj, status, "InvalidImagePullSecret", str(e),
                                 ctl.settings.secret_retry)
    request = create_request(spec, creds, ctl.settings.placement, ctl.settings.cluster_name)
    if status.get("purgedTime") and request.client_token:
        # After a purge the same generation is built again: a new token, or ECI would answer
        # with the purged cache's id (refresh.py).
        request.client_token += "-" + re.sub(r"[^0-9]", "", str(status["purgedTime"]))
    try:
        cache_id = await ctl.eci.create_image_cache(request)
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
        # Built from the whole spec: no earlier refusal still holds (a foreign cache still
        # was one).
        "conditions": owner.kept_conditions(status),
    })
    await ctl.event(obj, "Normal", "Created",
                    f"created ECI image cache {cache_id} of {len(spec.images)} image(s), "
                    f"{spec.size_gib} GiB")
    return None


async def lost(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec,
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


async def disown(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec,
                 cache_id: str, why: str) -> float | None:
    """``status.imageCacheId`` names a cache that is not this object's (written by someone
    else, or adopted by name by an earlier version): report it, never mirror, update or delete
    it, and give the object its own cache (the one tagged for it, if it exists)."""
    obj = await owner.report(
        ctl, obj, "StatusNotOurs",
        f"status.imageCacheId names ECI image cache {cache_id}, which is not this object's "
        f"({why}): left untouched, not deleted with the object")
    status = obj.get("status") or {}
    obj = await ctl.patch_status(obj, st.merge_patch(status, st.detached(status)))
    return await create_or_adopt(ctl, obj, spec, obj.get("status") or {})
