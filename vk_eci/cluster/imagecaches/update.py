"""ImageCache reconcile, step update: the object's status follows its ECI cache, and a
changed spec goes to ``UpdateImageCache`` (images, a growing size, retention) or, for a
failed cache, rebuilds it. What ECI cannot change in place is said once (RecreateRequired).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from vk_eci.cloud.api.errors import NotFound, Permanent
from vk_eci.cloud.caches.provenance import covers
from vk_eci.cluster.imagecaches import status as st
from vk_eci.cluster.imagecaches.context import StepContext
from vk_eci.cluster.imagecaches.create import create_or_adopt
from vk_eci.cluster.imagecaches.refresh import refresh, refresh_due
from vk_eci.cluster.imagecaches.spec import (
    ImageCacheSpec,
    SecretError,
    UpdatePlan,
    plan_update,
    update_request,
)


async def mirror_and_update(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec,
                            status: Mapping[str, Any], cache: Any) -> float | None:
    new = st.status_from_cache(cache, status, st.now())
    new["observedGeneration"] = int(status.get("observedGeneration") or 0)
    if st.changed(status, new):
        obj = await ctl.patch_status(obj, st.merge_patch(status, new))
        await transition_event(ctl, obj, status, new)
    if spec.generation == new["observedGeneration"]:
        why = refresh_due(obj["metadata"].get("annotations"), new, st.now()) \
            if cache.status in st.UPDATABLE else None
        return await refresh(ctl, obj, spec, cache, why) if why else None
    if cache.status == st.FAILED:
        # A failed cache cannot be updated; a changed spec (say, a secret added) rebuilds it.
        return await rebuild(ctl, obj, spec, cache)
    plan = plan_update(spec, cache)
    if not plan.sends:
        await observed(ctl, obj, spec, plan)
        return None
    if cache.status not in st.UPDATABLE:
        return ctl.settings.fast_poll  # ECI updates only Ready/UpdateFailed caches
    try:
        # Credentials only matter to images ECI pulls again.
        creds = await ctl.credentials(spec) if plan.images else []
    except SecretError as e:
        return await ctl.invalid(obj, obj.get("status") or {}, "InvalidImagePullSecret",
                                 str(e), ctl.settings.secret_retry)
    tags = [(str(t.key), str(t.value or "")) for t in getattr(cache, "tags", None) or []]
    if not covers(tags, (c.server for c in creds)):
        # ECI's tags are set at creation: pulling with new credentials in place would leave a
        # cache whose provenance says less than it holds (docs/IMAGE_CACHES.md).
        return await ctl.invalid(
            obj, obj.get("status") or {}, "CredentialsChanged",
            f"image cache {cache.image_cache_id} was not built with credentials for every "
            f"registry of spec.imagePullSecrets; re-create the ImageCache object to build it "
            f"with them", None)
    try:
        await ctl.eci.update_image_cache(
            update_request(cache.image_cache_id, spec, creds, ctl.settings.placement.region_id,
                           plan))
    except NotFound:
        ctl.view.caches.pop(cache.image_cache_id, None)
        ctl.view.acted(spec.name)
        return 0.0
    except Permanent as e:
        obj = await observed(ctl, obj, spec, plan)
        return await ctl.invalid(obj, obj.get("status") or {}, "UpdateFailed",
                                 f"ECI refused to update image cache "
                                 f"{cache.image_cache_id}: {e}", None)
    ctl.view.acted(spec.name)
    # Only new images start a build; a size or retention change leaves the cache Ready.
    await observed(ctl, obj, spec, plan, {"phase": st.UPDATING} if plan.images else {})
    await ctl.event(obj, "Normal", "Updating" if plan.images else "Updated",
                    f"{'updating' if plan.images else 'updated'} ECI image cache "
                    f"{cache.image_cache_id}: {plan.describe(spec)}")
    return None


async def observed(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec,
                   plan: UpdatePlan, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Mark ``spec``'s generation handled; a field ECI cannot change in place is said once,
    in a Warning event and the ``SpecApplied`` condition, never silently dropped."""
    status = obj.get("status") or {}
    patch: dict[str, Any] = {"observedGeneration": spec.generation, **(extra or {})}
    had = any(c.get("type") == st.SPEC_APPLIED for c in status.get("conditions") or [])
    if plan.refused or had:
        patch["conditions"] = st.with_condition(
            status.get("conditions"),
            st.spec_applied_condition(spec.generation, plan.refused, st.now()))
    if plan.sends or plan.refused:
        patch.update(lastUpdatedTime=st.format_time(st.now()), reason=None, message=None)
    obj = await ctl.patch_status(obj, patch)
    for refused in plan.refused:
        await ctl.event(obj, "Warning", "RecreateRequired", refused)
    return obj


async def rebuild(ctl: StepContext, obj: dict[str, Any], spec: ImageCacheSpec,
                  cache: Any) -> float | None:
    """A failed cache cannot be updated: replace it when the object's spec changed."""
    with contextlib.suppress(NotFound):
        await ctl.eci.delete_image_cache(cache.image_cache_id)
    ctl.view.caches.pop(cache.image_cache_id, None)
    ctl.view.gone(cache.image_cache_id)
    await ctl.event(obj, "Normal", "Rebuilding",
                    f"deleted failed ECI image cache {cache.image_cache_id} to build the "
                    f"changed spec")
    obj = await ctl.patch_status(obj, {"imageCacheId": None, "phase": st.PENDING,
                                       "progress": "0%", "expireDateTime": None,
                                       "events": None, "conditions": None,
                                       "reason": None, "message": None})
    ctl.view.acted(spec.name)
    return await create_or_adopt(ctl, obj, spec, obj.get("status") or {})


async def transition_event(ctl: StepContext, obj: dict[str, Any], old: Mapping[str, Any],
                           new: Mapping[str, Any]) -> None:
    before, after = old.get("phase"), new.get("phase")
    if before == after:
        return
    cache_id = new.get("imageCacheId")
    if after == st.READY:
        await ctl.event(obj, "Normal", "Ready",
                        f"ECI image cache {cache_id} is Ready with "
                        f"{len(new.get('images') or [])} image(s)")
    elif after == st.FAILED:
        await ctl.event(obj, "Warning", "Failed",
                        f"ECI image cache {cache_id} failed to build: {new.get('reason')}: "
                        f"{new.get('message')}; ECI removes it at "
                        f"{new.get('expireDateTime')}")
    elif after == st.UPDATE_FAILED:
        await ctl.event(obj, "Warning", "UpdateFailed",
                        f"ECI image cache {cache_id} failed to update: "
                        f"{new.get('message')}")
    else:
        await ctl.event(obj, "Normal", str(after),
                        f"ECI image cache {cache_id} is {after} ({new.get('progress')})")
