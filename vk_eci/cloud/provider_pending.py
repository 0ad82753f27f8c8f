"""``k8s.aliyun.com/eci-max-pending-minute``, enforced by the node.

ECI's newer API has a ``MaxPendingMinute`` field; the SDK this node uses (2.1.0) does not, so the
node counts instead, as ECI documents the limit: only the time the group is ECI ``Pending``
(not ``Scheduling`` or ``Restarting``), and not while an init container runs. Past the limit
the pod is ``Failed`` and its group deleted (ECI's own limit turns the instance ``Failed``).
The count is the node's, from when it first saw the group ``Pending``: a node restart starts it
again. Without the annotation nothing is counted here: ECI applies its default of 240 minutes.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client import V1PodStatus

from vk_eci.cloud.placement.annotations import MAX_PENDING

REASON = "PendingTimeout"


def limit_seconds(pod: Any) -> float | None:
    """The pod's limit in seconds; None without the annotation (or with a value that the
    create already refused)."""
    text = str((pod.metadata.annotations or {}).get(MAX_PENDING, "")).strip()
    if not text.isdigit() or not 10 <= int(text) <= 1440:
        return None
    return int(text) * 60.0


def pending_since(group: Any, since: float | None, now: float) -> float | None:
    """When the group's counted ``Pending`` time began (None: not counting now)."""
    if group.status != "Pending":
        return None
    if any(getattr(getattr(c, "current_state", None), "state", None) == "Running"
           for c in group.init_containers or []):
        return None  # "if the init container is running, the annotation does not take effect"
    return since if since is not None else now


def timed_out(group: Any, minutes: float) -> V1PodStatus:
    """The status of a pod whose group stayed ``Pending`` past its limit."""
    return V1PodStatus(phase="Failed", reason=REASON, message=(
        f"ECI container group {group.container_group_id} was Pending for more than "
        f"{minutes:g} minute(s) ({MAX_PENDING}); the node deleted it"))
