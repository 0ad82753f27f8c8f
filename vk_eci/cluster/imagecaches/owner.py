"""Which ECI image caches the ImageCache controller may touch (docs/SECURITY.md, item 6).

The ECI account is shared: other clusters, other tools and people make caches in it, and anyone
allowed to write ``imagecaches/status`` can put any cache id into an object's status. So the
controller adopts, updates, rebuilds or deletes a cache only when its tags prove that it was made
for this very object in this cluster: ``managed-by=vk-eci``, the object's name and UID, and this
cluster's name. A cache without the cluster tag is one an earlier version made (it tagged only the
first three), and is ours when those three match. Any other cache is left alone: a Warning event
``ForeignImageCache`` and a log line name it and say why, and the object's ``ForeignImageCache``
condition keeps the last such finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vk_eci.cloud.api import naming
from vk_eci.cluster.imagecaches import status as st
from vk_eci.cluster.imagecaches.context import StepContext
from vk_eci.cluster.imagecaches.observe import tags
from vk_eci.cluster.imagecaches.spec import TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE, TAG_NAME, TAG_UID

FOREIGN = "ForeignImageCache"  # the event's reason and the condition's type


def not_ours(cache: Any, name: str, uid: str, cluster_name: str,
             legacy_cluster_name: str = "") -> str | None:
    """Why ECI ``cache`` is not the cache of ImageCache ``name``/``uid`` here; None if it is.
    ``legacy_cluster_name``: the old default name an earlier version tagged caches with when
    this cluster's name is now derived (docs/SECURITY.md, item 3); the object's UID, which no other
    cluster's object has, still has to match."""
    have = tags(cache)
    if have.get(TAG_MANAGED_BY) != TAG_MANAGED_BY_VALUE:
        return f"it is not tagged {TAG_MANAGED_BY}={TAG_MANAGED_BY_VALUE}"
    if not uid or have.get(TAG_UID) != uid:
        return f"its tag {TAG_UID} is {have.get(TAG_UID)!r}, not this object's UID {uid!r}"
    if have.get(TAG_NAME) not in (name, naming.tag_value(name)):
        return f"its tag {TAG_NAME} is {have.get(TAG_NAME)!r}, not {name!r}"
    cluster = have.get(naming.TAG_CLUSTER)
    accepted = {naming.tag_value(n) for n in (cluster_name, legacy_cluster_name) if n}
    if cluster is not None and cluster not in accepted:
        return (f"its tag {naming.TAG_CLUSTER} is {cluster!r}, not this cluster's "
                f"{cluster_name!r}")
    return None


def foreign_condition(reason: str, message: str) -> dict[str, Any]:
    return {"type": FOREIGN, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": st.format_time(st.now())}


def kept_conditions(status: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Of ``status``'s conditions, those that outlive a new cache (the foreign finding)."""
    kept = [dict(c) for c in status.get("conditions") or [] if c.get("type") == FOREIGN]
    return kept or None


async def report(ctl: StepContext, obj: dict[str, Any], reason: str,
                 message: str, *, condition: bool = True) -> dict[str, Any]:
    """A foreign cache left alone: a Warning event and log line, and the condition."""
    await ctl.event(obj, "Warning", FOREIGN, message)
    if not condition:
        return obj
    status = obj.get("status") or {}
    conditions = st.with_condition(status.get("conditions"), foreign_condition(reason, message))
    return await ctl.patch_status(obj, {"conditions": conditions})
