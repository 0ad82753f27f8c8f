"""Spot (preemptible) container groups: how ECI's reclaim shows on the pod.

ECI warns with a ``SpotToBeReleased`` event about three minutes before it releases a spot
instance, then the group is ``Expired``. The warning is copied onto the pod as a Warning event
like every ECI event. The ``Expired`` group becomes a ``Failed`` pod with reason
``SpotPreempted`` and a ``DisruptionTarget`` condition, the condition Kubernetes itself sets on
pods it disrupts: a Deployment's ReplicaSet replaces the pod, and a Job whose
``podFailurePolicy`` matches ``DisruptionTarget`` can ignore the failure instead of counting it
against ``backoffLimit``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes_asyncio.client import V1PodCondition

WARNING_REASON = "SpotToBeReleased"
PREEMPTED_REASON = "SpotPreempted"
DISRUPTION_REASON = "TerminationByKubelet"  # Kubernetes' reason when the node ends a pod


def is_spot(group: Any) -> bool:
    return (getattr(group, "spot_strategy", None) or "NoSpot") != "NoSpot"


def warned(group: Any) -> bool:
    """Whether ECI has announced this group's release."""
    return any(getattr(e, "reason", None) == WARNING_REASON for e in group.events or [])


def reclaimed(group: Any) -> bool:
    """A spot group that ended Failed after ECI announced its release: reclaimed too (ECI
    reports a reclaimed spot instance as Expired; a Failed one after the warning is the same)."""
    return group.status == "Failed" and is_spot(group) and warned(group)


def expired(group: Any, since: datetime) -> tuple[str, str, V1PodCondition | None]:
    """Reason, message and (for spot) the ``DisruptionTarget`` condition of an Expired group."""
    gid = group.container_group_id or ""
    if not is_spot(group):
        return "Expired", f"ECI container group {gid} is Expired", None
    message = (f"ECI reclaimed spot instance {gid} ({group.spot_strategy}); the pod was "
               "preempted and will not restart here")
    return PREEMPTED_REASON, message, V1PodCondition(
        type="DisruptionTarget", status="True", reason=DISRUPTION_REASON, message=message,
        last_transition_time=since)
