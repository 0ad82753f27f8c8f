"""ImageCache reconcile, step delete/finalize: a deleted object's ECI caches are deleted (the
one in its status and any tagged with its UID whose id never reached the status), then our
finalizer is removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vk_eci.cloud.errors import NotFound
from vk_eci.cluster.imagecache_observe import tags
from vk_eci.cluster.imagecache_spec import FINALIZER, TAG_UID, spec_from_object

if TYPE_CHECKING:
    from vk_eci.cluster.imagecaches import ImageCacheController


async def finalize(ctl: ImageCacheController, obj: dict[str, Any]) -> float | None:
    meta = obj["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if FINALIZER not in finalizers:
        return None
    status = obj.get("status") or {}
    ids: set[str] = set()
    if status.get("imageCacheId"):
        ids.add(status["imageCacheId"])
    try:
        spec = spec_from_object(obj)
        # A cache created just before a crash, whose id never reached the status.
        ids.update(c.image_cache_id
                   for c in await ctl.eci.describe_image_caches(name=spec.eci_name)
                   if tags(c).get(TAG_UID) == spec.uid)
    except ValueError:
        pass
    for cache_id in sorted(ids):
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
