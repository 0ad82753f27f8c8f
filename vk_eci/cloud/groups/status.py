"""ECI container group → Kubernetes pod status (docs/BEHAVIOUR.md §10), pure functions.

:func:`group_to_pod_status` maps a ``DescribeContainerGroups`` group model to a ``V1PodStatus``;
condition transition times are kept from the pod's current status when the condition did not
change, so that an unchanged group gives an equal status and :func:`status_changed` can tell
the controller to skip the write. :func:`group_events` lists the group's ECI events for copying
onto the pod (once each, by name and count).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client import (
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1PodCondition,
    V1PodIP,
    V1PodStatus,
)

from vk_eci.cloud.groups import spot

PHASES = {
    "Scheduling": "Pending", "Pending": "Pending", "Restarting": "Pending",
    "Updating": "Pending", "Running": "Running", "Terminating": "Running",
    "Succeeded": "Succeeded", "Failed": "Failed", "Expired": "Failed",
    "ScheduleFailed": "Failed",
}
_UNSCHEDULED = {"Scheduling", "ScheduleFailed"}


def phase_of(eci_status: str | None) -> str:
    """The pod phase of an ECI group status (unknown statuses count as Pending)."""
    return PHASES.get(eci_status or "", "Pending")


def parse_time(text: str | None) -> datetime | None:
    """An ECI timestamp (``2024-01-01T00:00:05Z``) as an aware datetime, second precision."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.replace(microsecond=0)


def _state(state: Any) -> V1ContainerState | None:
    kind = getattr(state, "state", None) if state is not None else None
    if kind == "Running":
        return V1ContainerState(running=V1ContainerStateRunning(
            started_at=parse_time(state.start_time)))
    if kind == "Terminated":
        return V1ContainerState(terminated=V1ContainerStateTerminated(
            exit_code=int(state.exit_code or 0), signal=state.signal or None,
            reason=state.reason or ("Completed" if not state.exit_code else "Error"),
            message=state.message or None, started_at=parse_time(state.start_time),
            finished_at=parse_time(state.finish_time)))
    if kind == "Waiting":
        return V1ContainerState(waiting=V1ContainerStateWaiting(
            reason=state.reason or state.detail_status or "ContainerCreating",
            message=state.message or None))
    return None


def _container_status(group_id: str, spec: Any, eci_container: Any | None,
                      group_phase: str) -> V1ContainerStatus:
    if eci_container is None:
        # ECI does not list it (yet): waiting, or terminated if the whole group is over.
        state = V1ContainerState(waiting=V1ContainerStateWaiting(reason="ContainerCreating"))
        if group_phase in ("Succeeded", "Failed"):
            state = V1ContainerState(terminated=V1ContainerStateTerminated(
                exit_code=0 if group_phase == "Succeeded" else 1,
                reason="Completed" if group_phase == "Succeeded" else "ContainerStatusUnknown"))
        return V1ContainerStatus(name=spec.name, image=spec.image, image_id="", ready=False,
                                 restart_count=0, state=state, started=False)
    current = _state(eci_container.current_state) or V1ContainerState(
        waiting=V1ContainerStateWaiting(reason="ContainerCreating"))
    last = _state(eci_container.previous_state)
    running = current.running is not None
    # The image ECI runs, as the kubelet reports the running one: after kubectl set image it
    # is the new one only once ECI took the change (UpdateContainerGroup), never before.
    return V1ContainerStatus(
        name=spec.name, image=eci_container.image or spec.image, image_id="",
        container_id=f"eci://{group_id}/{spec.name}", ready=bool(eci_container.ready) and running,
        restart_count=int(eci_container.restart_count or 0), state=current,
        last_state=last or V1ContainerState(), started=running)


def _by_name(items: Sequence[Any] | None) -> dict[str, Any]:
    return {c.name: c for c in items or []}


def _condition(kind: str, ok: bool, previous: Sequence[Any] | None, since: datetime,
               reason: str | None = None, message: str | None = None) -> V1PodCondition:
    """A condition; its transition time is kept from ``previous`` when unchanged, else
    ``since`` (derived from ECI's own times, so that repeated mappings agree)."""
    status = "True" if ok else "False"
    when = since
    for old in previous or []:
        if old.type == kind and old.status == status and old.last_transition_time is not None:
            when = old.last_transition_time
    return V1PodCondition(type=kind, status=status, last_transition_time=when,
                          reason=None if ok else reason, message=None if ok else message)


def _latest(times: Sequence[datetime | None]) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def group_to_pod_status(group: Any, pod: Any, now: datetime | None = None) -> V1PodStatus:
    """The pod status for ECI ``group`` (see the module docstring)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    eci_status = group.status or "Pending"
    phase = phase_of(eci_status)
    spec = pod.spec
    old = pod.status
    old_conditions = old.conditions if old is not None else None
    apps = _by_name(group.containers)
    inits = _by_name(group.init_containers)
    gid = group.container_group_id or ""
    statuses = [_container_status(gid, c, apps.get(c.name), phase) for c in spec.containers]
    # A native sidecar (restartPolicy Always) runs as an ECI app container; like the kubelet,
    # it is still reported among the init container statuses.
    init_statuses = [_container_status(gid, c, inits.get(c.name) or (
        apps.get(c.name) if getattr(c, "restart_policy", None) == "Always" else None), phase)
                     for c in spec.init_containers or []]
    scheduled = eci_status not in _UNSCHEDULED
    inits_done = all(s.state.terminated is not None and s.state.terminated.exit_code == 0
                     for s in init_statuses) or phase in ("Running", "Succeeded")
    containers_ready = bool(statuses) and all(s.ready for s in statuses)
    ready = containers_ready and phase == "Running" and eci_status != "Terminating"
    not_ready = [s.name for s in statuses if not s.ready]
    why = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else None
    created = parse_time(group.creation_time) or now
    init_done_at = _latest([s.state.terminated.finished_at for s in init_statuses
                            if s.state.terminated is not None]) or created
    ready_at = _latest([s.state.running.started_at for s in statuses
                        if s.state.running is not None]) or created
    ended_at = _latest([s.state.terminated.finished_at for s in statuses
                        if s.state.terminated is not None]) or parse_time(
        group.succeeded_time or group.failed_time)
    unready_at = ended_at or created
    conditions = [
        _condition("PodScheduled", scheduled, old_conditions, created, "Unschedulable",
                   f"ECI could not schedule container group {gid} ({eci_status})"),
        _condition("Initialized", inits_done, old_conditions,
                   init_done_at if inits_done else created, "ContainersNotInitialized",
                   "init containers have not completed"),
        _condition("ContainersReady", containers_ready, old_conditions,
                   ready_at if containers_ready else unready_at, "ContainersNotReady", why),
        _condition("Ready", ready, old_conditions, ready_at if ready else unready_at,
                   "ContainersNotReady", why),
    ]
    ip = group.intranet_ip or None
    reason = message = None
    if eci_status == "Expired" or spot.reclaimed(group):
        since = parse_time(getattr(group, "expired_time", None)) or ended_at or now
        reason, message, disruption = spot.expired(group, since)
        if disruption is not None:
            conditions.append(disruption)
    elif eci_status == "ScheduleFailed" or (
            eci_status == "Failed" and not any(s.state.terminated for s in statuses)):
        reason = "ProviderFailed"
        message = f"ECI container group {gid} is {eci_status}"
    start = (old.start_time if old is not None and old.start_time else None) or \
        parse_time(group.creation_time)
    return V1PodStatus(
        phase=phase, conditions=conditions, pod_ip=ip,
        pod_ips=[V1PodIP(ip=ip)] if ip else None, host_ip=ip,
        start_time=start, container_statuses=statuses,
        init_container_statuses=init_statuses or None, reason=reason, message=message,
        qos_class=old.qos_class if old is not None else None)


def _projection(status: Any) -> Any:
    if status is None:
        return None
    data = status.to_dict() if hasattr(status, "to_dict") else dict(status)
    for cond in data.get("conditions") or []:
        cond.pop("last_transition_time", None)
        cond.pop("last_probe_time", None)
    data.pop("qos_class", None)
    data.pop("start_time", None)
    return data


def status_fingerprint(status: Any) -> bytes:
    """16 bytes that differ when :func:`status_changed` would say so: what the provider keeps
    per pod of the last status it pushed, in place of the status itself (a few KiB a pod)."""
    return hashlib.blake2b(repr(_projection(status)).encode(), digest_size=16).digest()


def status_changed(old: Any, new: Any) -> bool:
    """Whether writing ``new`` over ``old`` would change what users see (times of unchanged
    conditions and the QoS class, which the API server sets, are ignored)."""
    return bool(_projection(old) != _projection(new))


@dataclass(frozen=True)
class GroupEvent:
    """One ECI event of a group, to be copied onto its pod."""

    name: str
    type: str  # Normal | Warning
    reason: str
    message: str
    count: int
    first: datetime | None
    last: datetime | None

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity for "copy once": the same event with a higher count is new again."""
        return (self.name, self.reason, self.count)


def group_events(group: Any) -> list[GroupEvent]:
    """The group's events (present when described ``WithEvent``), oldest first."""
    out = [GroupEvent(name=e.name or "", type=e.type if e.type in ("Normal", "Warning")
                      else "Normal", reason=e.reason or "", message=e.message or "",
                      count=int(e.count or 1), first=parse_time(e.first_timestamp),
                      last=parse_time(e.last_timestamp)) for e in group.events or []]
    out.sort(key=lambda e: (e.last or datetime.min.replace(tzinfo=UTC), e.name))
    return out
