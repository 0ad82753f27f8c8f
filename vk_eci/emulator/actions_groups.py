"""Container-group actions other than create: Describe, Delete, Events, Logs, Exec."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from vk_eci.emulator import update
from vk_eci.emulator.clock import iso
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.errors import ApiError, group_not_found, invalid, missing
from vk_eci.emulator.exec_ws import TTL as EXEC_TTL
from vk_eci.emulator.exec_ws import ExecSession
from vk_eci.emulator.groups import (
    ContainerDef,
    Group,
    all_events,
    container_run,
    logs,
    status,
)
from vk_eci.emulator.paging import page
from vk_eci.emulator.params import get_bool, get_int, get_json_id_list, get_str, get_tags
from vk_eci.emulator.programs import exec_output
from vk_eci.emulator.render import RawList, render_group_json
from vk_eci.emulator.signature import parse_iso

MAX_IDS = 20
STATUSES = {"Scheduling", "Pending", "Running", "Succeeded", "Failed", "Restarting",
            "Updating", "Terminating", "Expired", "ScheduleFailed"}


def filtered(ctx: Ctx, *, ids_key: str = "ContainerGroupIds") -> list[Group]:
    state, tree = ctx.state, ctx.tree
    ids = get_json_id_list(tree, ids_key, max_items=MAX_IDS)
    tags = get_tags(tree)
    groups: list[Group]
    if ids is not None:
        groups = [state.groups[i] for i in dict.fromkeys(ids) if i in state.groups]
    elif tags:
        sets = [state.by_tag.get(t, {}) for t in tags]
        smallest = min(sets, key=len)
        groups = [state.groups[i] for i in smallest if all(i in s for s in sets)]
        tags = []
    else:
        groups = list(state.groups.values())
    if tags:
        groups = [g for g in groups if all(t in g.tags for t in tags)]
    name = get_str(tree, "ContainerGroupName")
    if name:
        groups = [g for g in groups if g.name == name]
    for field, attr in (("ZoneId", "zone"),):
        value = get_str(tree, field)
        if value:
            groups = [g for g in groups if getattr(g, attr) == value]
    for field in ("VSwitchId", "SecurityGroupId", "ResourceGroupId"):
        value = get_str(tree, field)
        if value:
            groups = [g for g in groups if g.raw.get(field) == value]
    return groups


def describe_container_groups(ctx: Ctx) -> dict[str, Any]:
    tree, now, timing = ctx.tree, ctx.now, ctx.state.timing
    limit = get_int(tree, "Limit", lo=1, hi=20) or 20
    groups = filtered(ctx)
    wanted = get_str(tree, "Status")
    if wanted:
        if wanted not in STATUSES:
            raise invalid("Status", f"{wanted!r} is not one of {sorted(STATUSES)}")
        groups = [g for g in groups if status(g, timing, now)[0] == wanted]
    with_events = get_bool(tree, "WithEvent", default=True)
    chosen, token = page(groups, limit, get_str(tree, "NextToken"))
    return {"ContainerGroups": RawList(render_group_json(g, timing, now, with_events=with_events)
                                       for g in chosen),
            "TotalCount": len(groups), "NextToken": token}


def _group(ctx: Ctx) -> Group:
    group_id = get_str(ctx.tree, "ContainerGroupId", required=True)
    assert group_id is not None
    group = ctx.state.groups.get(group_id)
    if group is None:
        raise group_not_found(group_id)
    return group


def delete_container_group(ctx: Ctx) -> dict[str, Any]:
    group = _group(ctx)
    ctx.state.stop_group(group)
    return {}


def update_container_group(ctx: Ctx) -> dict[str, Any]:
    return update.update_container_group(ctx, _group(ctx))


def describe_container_group_events(ctx: Ctx) -> dict[str, Any]:
    tree, now, timing = ctx.tree, ctx.now, ctx.state.timing
    since = get_int(tree, "SinceSecond", lo=0)
    limit = get_int(tree, "Limit", lo=1, hi=100) or 20
    groups = filtered(ctx)
    chosen, token = page(groups, limit, get_str(tree, "NextToken"))
    data = []
    for g in chosen:
        events = all_events(g, timing, now)
        if since is not None:
            events = [e for e in events if e.last >= since]
        data.append({
            "ContainerGroupId": g.id, "Name": g.name, "Namespace": "", "uuid": g.id,
            "Annotations": "",
            "Events": [{
                "Count": e.count, "Type": e.type, "Reason": e.reason, "Message": e.message,
                "FirstTimestamp": iso(e.first), "LastTimestamp": iso(e.last),
                "Metadata": {"Name": f"{g.id}.{i:x}", "Namespace": ""},
                "ReportingComponent": "", "ReportingInstance": "",
                "Source": {"Component": "kubelet", "Host": "eci"},
                "involvedObject": {"ApiVersion": "v1", "Kind": "Pod", "Name": g.name,
                                   "Namespace": "", "Uid": g.id},
            } for i, e in enumerate(events)],
        })
    return {"Data": data, "TotalCount": len(groups), "NextToken": token}


def _container(group: Group, name: str | None) -> ContainerDef:
    if not name:
        raise missing("ContainerName")
    for c in [*group.containers, *group.init_containers]:
        if c.name == name:
            return c
    raise invalid("ContainerName", f"group {group.id} has no container named {name!r}",
                  code="InvalidParameter.ContainerName")


def describe_container_log(ctx: Ctx) -> dict[str, Any]:
    tree, now, timing = ctx.tree, ctx.now, ctx.state.timing
    group = _group(ctx)
    c = _container(group, get_str(tree, "ContainerName"))
    lines = logs(group, c, timing, now, previous=get_bool(tree, "LastTime"))
    since = get_int(tree, "SinceSeconds", lo=1)
    if since is not None:
        lines = [(t, s) for t, s in lines if t >= now - since]
    start = get_str(tree, "StartTime")
    if start:
        when = parse_iso(start)
        if when is None:
            raise invalid("StartTime", f"{start!r} is not an ISO 8601 UTC time")
        lines = [(t, s) for t, s in lines if t >= when]
    tail = get_int(tree, "Tail", lo=0)
    if tail is not None:
        lines = lines[-tail:] if tail else []
    stamps = get_bool(tree, "Timestamps")
    content = "".join((f"{iso(t)} {s}\n" if stamps else f"{s}\n") for t, s in lines)
    limit = get_int(tree, "LimitBytes", lo=1)
    if limit is not None:
        content = content.encode()[:limit].decode(errors="ignore")
    return {"ContainerName": c.name, "Content": content}


async def _sync_live(c: ContainerDef, command: list[str]) -> dict[str, Any]:
    assert c.live is not None
    output, _ = await c.live.exec(command)
    return {"SyncResponse": output.decode(errors="replace"), "HttpUrl": "", "WebSocketUri": ""}


def exec_container_command(ctx: Ctx) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    tree, now, timing = ctx.tree, ctx.now, ctx.state.timing
    group = _group(ctx)
    c = _container(group, get_str(tree, "ContainerName"))
    raw = get_str(tree, "Command", required=True)
    assert raw is not None
    try:
        command = json.loads(raw)
    except ValueError:
        raise invalid("Command", "expected a JSON array of strings, e.g. [\"ls\",\"-l\"]") from None
    if not isinstance(command, list) or not command or not all(isinstance(x, str)
                                                               for x in command):
        raise invalid("Command", "expected a non-empty JSON array of strings")
    run = container_run(group, c, timing, now)
    if run is None or run.phase != "Running":
        raise ApiError("IncorrectStatus", f"Container {c.name} of {group.id} is not running; "
                       "exec needs a running container.", 400)
    if get_bool(tree, "Sync") and c.live is not None:
        return _sync_live(c, command)
    if get_bool(tree, "Sync"):
        output, _ = exec_output(command)
        return {"SyncResponse": output, "HttpUrl": "", "WebSocketUri": ""}
    token = ctx.state.new_id("")
    ctx.state.exec_sessions = {k: v for k, v in ctx.state.exec_sessions.items()
                               if v.expires > now}
    ctx.state.exec_sessions[token] = ExecSession(
        group_id=group.id, container=c.name, command=tuple(command),
        tty=bool(get_bool(tree, "TTY")), stdin=get_bool(tree, "Stdin") is not False,
        expires=now + EXEC_TTL)
    uri = f"ws://{ctx.endpoint}/exec/?s={token}"
    return {"WebSocketUri": uri, "HttpUrl": uri.replace("ws://", "http://", 1),
            "SyncResponse": ""}
