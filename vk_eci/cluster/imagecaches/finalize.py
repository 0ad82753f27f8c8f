"""ImageCache reconcile, step delete/finalize: a deleted object's ECI caches are deleted, then
our finalizer is removed.

Deleted are the caches whose tags prove they were made for this object
(:mod:`~vk_eci.cluster.imagecaches.owner`): the one in its status and any of its name tagged for
it whose id never reached the status. A cache the status names that is not ours (someone wrote
the id, or an earlier version adopted it by name) is never deleted; it is reported instead. The
object's metadata suffices: an object whose spec became invalid is finalized all the same.
"""

from __future__ import annotations

from typing import Any

from vk_eci.cloud.api.errors import NotFound, Permanent
from vk_eci.cluster.imagecaches import owner
from vk_eci.cluster.imagecaches.context import StepContext
from vk_eci.cluster.imagecaches.spec import FINALIZER, eci_cache_name


async def finalize(ctl: StepContext, obj: dict[str, Any]) -> float | None:
    meta = obj["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if FINALIZER not in finalizers:
        return None
    name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    status_id = (obj.get("status") or {}).get("imageCacheId")
    # A cache created just before a crash, whose id never reached the status, has our name.
    caches = {c.image_cache_id: c for c in
              await ctl.eci.describe_image_caches(name=eci_cache_name(name))}
    if status_id and status_id not in caches:
        try:
            caches.update((c.image_cache_id, c)
                          for c in await ctl.eci.describe_image_caches(ids=[status_id])
                          if c.image_cache_id == status_id)
        except NotFound:
            pass
        except Permanent as e:
            # Unprovable is not ours: never deleted on a guess.
            await owner.report(ctl, obj, "StatusNotOurs",
                               f"status.imageCacheId names ECI image cache {status_id}, which "
                               f"could not be described ({e}): not deleted", condition=False)
    for cache_id, cache in sorted(caches.items()):
        why = ctl.not_ours(cache, name, uid)
        if why is not None:
            if cache_id == status_id:
                await owner.report(ctl, obj, "StatusNotOurs",
                                   f"status.imageCacheId names ECI image cache {cache_id}, "
                                   f"which is not this object's ({why}): not deleted",
                                   condition=False)
            continue
        try:
            await ctl.eci.delete_image_cache(cache_id)
        except NotFound:
            ctl.view.gone(cache_id)
            continue
        ctl.view.caches.pop(cache_id, None)
        ctl.view.gone(cache_id)
        await ctl.event(obj, "Normal", "Deleted", f"deleted ECI image cache {cache_id}")
    await ctl.set_finalizers(obj, [f for f in finalizers if f != FINALIZER])
    return None
