"""``UpdateContainerGroup``: a running (or pending) group's containers replaced in place.

As ECI documents it: only ``Pending`` and ``Running`` groups can be updated (others answer
``IncorrectStatus``), the group is ``Updating`` meanwhile; ``UpdateType`` is ``RenewUpdate``
(default: a list parameter names all its items) or ``IncrementalUpdate``; containers and init
containers are only ever replaced whole ("仅支持全量更新"), and updating init containers restarts
the instance. Which containers restart on a container update is not documented; the emulator
restarts exactly the containers whose image, command or arguments changed (a pull of the new
image, then a start), and keeps the others running. Nothing to change answers ``NoNeedUpdate``.
A container an update restarts after it had started counts one more restart
(``RestartCount``, on top of those it had made), as a kubelet counts a container it replaced.
"""

from __future__ import annotations

from typing import Any

from vk_eci.emulator import placement, validate
from vk_eci.emulator.catalog import image_size_mb
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.errors import ApiError, invalid
from vk_eci.emulator.groups import ContainerDef, Group, container_run, plan, status
from vk_eci.emulator.params import get_list, get_str

UPDATE_TYPES = ("RenewUpdate", "IncrementalUpdate")


def _same(a: ContainerDef, b: ContainerDef) -> bool:
    return (a.image, a.command, a.args, a.pull_policy) == (b.image, b.command, b.args,
                                                           b.pull_policy)


def update_container_group(ctx: Ctx, group: Group) -> dict[str, Any]:
    from vk_eci.emulator.actions_create import _containers  # the create's own parsing

    tree, state, now = ctx.tree, ctx.state, ctx.now
    kind = get_str(tree, "UpdateType") or "RenewUpdate"
    if kind not in UPDATE_TYPES:
        raise invalid("UpdateType", f"{kind!r} is not one of {list(UPDATE_TYPES)}")
    current, _ = status(group, state.timing, now)
    if current not in ("Pending", "Running"):
        raise ApiError("IncorrectStatus", f"The container group {group.id} is {current}; only "
                       "Pending or Running container groups can be updated.", 403)
    volumes = {str(v.get("Name", "")) for v in get_list(group.raw, "Volume")}
    containers = _containers(ctx, "Container", init=False, volumes=volumes)
    inits = _containers(ctx, "InitContainer", init=True, volumes=volumes)
    if kind == "RenewUpdate" and containers and \
            {c.name for c in containers} != {c.name for c in group.containers}:
        raise invalid("Container", "a RenewUpdate names every container of the group")
    old = {c.name: c for c in group.containers}
    changed = [c for c in containers if c.name not in old or not _same(c, old[c.name])]
    old_inits = {c.name: c for c in group.init_containers}
    inits_changed = [c for c in inits if c.name not in old_inits
                     or not _same(c, old_inits[c.name])]
    if not changed and not inits_changed:
        raise ApiError("NoNeedUpdate", "There are no changes to be updated for current "
                       "resource.", 400)
    group.event("Normal", "Updating", f"Container group {group.id} is being updated", now)
    ran = {c.name: _restarts_so_far(group, c, state.timing, now)
           for c in [*group.containers, *group.init_containers]}
    creds = validate.credentials(group.raw)
    access = placement.registry_access(group.raw)
    if inits_changed:
        # The whole instance restarts: every container from the start, on the same timeline.
        group.init_containers = [c if c in inits_changed else _fresh(old_inits[c.name])
                                 for c in inits]
        group.containers = [c if c in changed else _fresh(old[c.name]) for c in containers] \
            if containers else [_fresh(c) for c in group.containers]
        for c in [*group.init_containers, *group.containers]:
            c.restarts_before = ran.get(c.name, 0)
        every = [*group.init_containers, *group.containers]
        created, group.running_at, group.failed_at = group.created, None, None
        group.created = now   # plan() lays the timeline out from here
        plan(group, state.timing, set(), {c.raw["_norm"]: state.registries.pull_error(
            c.image, creds, access) for c in every},
            {c.raw["_norm"]: image_size_mb(c.raw["_norm"]) for c in every})
        group.created = created
        group.updating_until = group.running_at or now
    else:
        t = now
        for c in changed:
            c.restarts_before = ran.get(c.name, 0)
            t = _restart(ctx, group, c, t, creds, access)
        by_name = {c.name: c for c in changed}
        group.containers = [by_name.get(c.name, c) for c in group.containers]
        group.updating_until = t
        if group.running_at is not None:
            group.running_at = max(group.running_at, t)
    group.updated_at = now
    group.static_render = None   # the containers' images are part of it
    group.json_cache = None
    group.change_memo = None
    return {}


def _restarts_so_far(group: Group, c: ContainerDef, timing: Any, now: float) -> int:
    """The restart count the container will have once the update replaced it: what it shows
    now, plus one if it had started (a container still pulling was never running)."""
    run = container_run(group, c, timing, now)
    if run is None:
        return c.restarts_before
    return c.restarts_before + run.restart_count + 1


def _fresh(c: ContainerDef) -> ContainerDef:
    return ContainerDef(c.name, c.image, c.cpu, c.memory, c.pull_policy, c.command, c.args,
                        c.program, c.raw, c.init)


def _restart(ctx: Ctx, group: Group, c: ContainerDef, t: float,
             creds: list[tuple[str, str, str]], access: Any) -> float:
    """Kill the old container, pull the new image, start it: returns when it runs."""
    timing = ctx.state.timing
    group.event("Normal", "Killing", f"Container {c.name} definition changed, will be "
                "restarted", t)
    error = ctx.state.registries.pull_error(c.image, creds, access)
    c.pull_start = t
    group.event("Normal", "Pulling", f"Pulling image \"{c.image}\"", t)
    if error is not None:
        c.pull_error = error
        group.event("Warning", "Failed", f"Failed to pull image \"{c.image}\": {error}",
                    t + timing.d(1.0))
        return t + timing.d(1.0)
    c.pull_end = t = t + timing.pull_s(image_size_mb(c.raw["_norm"]))
    group.event("Normal", "Pulled", f"Successfully pulled image \"{c.image}\"", t)
    group.event("Normal", "Created", f"Created container {c.name}", t)
    c.start = t = t + timing.d(timing.container_start_s)
    return t
