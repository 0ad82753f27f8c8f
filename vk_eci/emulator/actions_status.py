"""``DescribeContainerGroupStatus``: statuses of many groups, Kubernetes-shaped, for polling.

Filters as ECI documents them: ``ContainerGroupIds`` (a JSON array of at most 20 ids),
``Tag.N``, ``ZoneId``, ``VSwitchId``, ``ResourceGroupId``; ``SinceSecond`` keeps only groups
whose status changed in the last N seconds (their creation counts as a change), which is how a
client polls; ``Limit`` (default 200) + ``NextToken`` page. Each ``Data`` item carries the
group's ECI ``Status`` and a ``PodStatus`` (phase, conditions, container statuses with
State/LastState/Ready/RestartCount/Started, IPs, start time) under the SDK's own field names,
including its ``StartedAtstartedAt`` and lower-case condition keys.
"""

from __future__ import annotations

from typing import Any

from vk_eci.emulator.actions_groups import filtered
from vk_eci.emulator.changes import last_change
from vk_eci.emulator.clock import iso
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.groups import Group, container_run, status
from vk_eci.emulator.paging import page
from vk_eci.emulator.params import get_int, get_str
from vk_eci.emulator.render import container_states
from vk_eci.emulator.timing import Timing

DEFAULT_LIMIT = 200
MAX_LIMIT = 200
# ECI status -> Kubernetes phase (docs/BEHAVIOUR.md §10).
_PHASE = {"Scheduling": "Pending", "Pending": "Pending", "Restarting": "Pending",
          "Updating": "Pending", "Running": "Running", "Terminating": "Running",
          "Succeeded": "Succeeded", "Failed": "Failed", "Expired": "Failed",
          "ScheduleFailed": "Failed"}


def describe_container_group_status(ctx: Ctx) -> dict[str, Any]:
    tree, now, timing = ctx.tree, ctx.now, ctx.state.timing
    limit = get_int(tree, "Limit", lo=1, hi=MAX_LIMIT) or DEFAULT_LIMIT
    since = get_int(tree, "SinceSecond", lo=1)
    groups = filtered(ctx)
    if since is not None:
        groups = [g for g in groups if last_change(g, timing, now) >= now - since]
    chosen, token = page(groups, limit, get_str(tree, "NextToken"))
    return {"Data": [_item(g, timing, now) for g in chosen], "TotalCount": len(groups),
            "NextToken": token}


def _item(group: Group, timing: Timing, now: float) -> dict[str, Any]:
    st, _ = status(group, timing, now)
    return {"ContainerGroupId": group.id, "Name": group.name, "Namespace": "", "uuid": group.id,
            "Annotations": "", "Status": st, "PodStatus": pod_status(group, timing, now, st)}


def _k8s_state(state: dict[str, Any]) -> dict[str, Any]:
    """ECI's CurrentState/PreviousState as the PodStatus ``State``/``LastState`` object."""
    kind = state.get("State")
    if kind == "Running":
        return {"Running": {"StartedAtstartedAt": state["StartTime"]}}
    if kind == "Terminated":
        return {"Terminated": {"ContainerID": "", "ExitCode": state["ExitCode"],
                               "FinishedAt": state["FinishTime"], "Message": state["Message"],
                               "Reason": state["Reason"], "Signal": state["Signal"],
                               "StartedAt": state["StartTime"]}}
    if kind == "Waiting":
        return {"Waiting": {"Reason": state["Reason"], "Message": state["Message"]}}
    return {}


def _condition(kind: str, ok: bool, since: float | None) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False",
            "lastTransitionTime": iso(since) if since is not None else "",
            "Reason": "", "Message": ""}


def pod_status(group: Group, timing: Timing, now: float, st: str) -> dict[str, Any]:
    statuses = []
    ready_since: list[float] = []
    all_ready = bool(group.containers)
    for c in group.containers:
        run = container_run(group, c, timing, now)
        s = container_states(group, c, run, now, timing)
        ready = bool(s["Ready"])
        all_ready = all_ready and ready
        if ready and run is not None:
            ready_since.append(run.start)
        statuses.append({"Name": c.name, "Image": c.image, "ImageID": "", "Ready": ready,
                         "RestartCount": s["RestartCount"],
                         "Started": s["CurrentState"]["State"] == "Running",
                         "State": _k8s_state(s["CurrentState"]),
                         "LastState": _k8s_state(s["PreviousState"])})
    scheduled = now >= group.scheduled
    inits_done = all(c.start is not None and (run := container_run(group, c, timing, now))
                     is not None and run.phase == "Terminated" and run.end is not None
                     for c in group.init_containers)
    init_end = max((c.start for c in group.init_containers if c.start is not None),
                   default=group.scheduled)
    ready_at = max(ready_since) if all_ready and ready_since else None
    conditions = [_condition("PodScheduled", scheduled, group.scheduled if scheduled else None),
                  _condition("Initialized", scheduled and inits_done,
                             init_end if scheduled and inits_done else None),
                  _condition("ContainersReady", ready_at is not None, ready_at),
                  _condition("Ready", ready_at is not None, ready_at)]
    ip = group.intranet_ip if scheduled else ""
    return {"Phase": _PHASE.get(st, "Unknown"), "Conditions": conditions,
            "ContainerStatuses": statuses, "HostIp": ip, "PodIp": ip,
            "PodIps": [{"Ip": ip}] if ip else [], "QosClass": "Guaranteed",
            "StartTime": iso(group.scheduled) if scheduled else ""}
