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

Volumes: the types ECI lists as updatable (EmptyDir, ConfigFile, NFS, FlexVolume; HostPath "not
open") may be given again, each whole, by name; a ``RenewUpdate`` that gives volumes names
every volume of the group. ECI restarts the instance for any update other than registry
credentials alone, so a changed volume restarts the whole group as an init container change
does (every container counts one more restart) and the group shows the new content. A process
group of the live world (``livegroups.py``) keeps the files it was started with.
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
UPDATABLE_VOLUMES = ("ConfigFileVolume", "EmptyDirVolume", "NFSVolume", "FlexVolume")


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
    volumes_changed = _volumes(ctx, group, kind)
    if not changed and not inits_changed and not volumes_changed:
        raise ApiError("NoNeedUpdate", "There are no changes to be updated for current "
                       "resource.", 400)
    group.event("Normal", "Updating", f"Container group {group.id} is being updated", now)
    ran = {c.name: _restarts_so_far(group, c, state.timing, now)
           for c in [*group.containers, *group.init_containers]}
    creds = validate.credentials(group.raw)
    access = placement.registry_access(group.raw)
    if volumes_changed:
        new = {str(v.get("Name", "")): v for v in volumes_changed}
        group.raw["Volume"] = [new.get(str(v.get("Name", "")), v)
                               for v in get_list(group.raw, "Volume")]
    if inits_changed or volumes_changed:
        # The whole instance restarts: every container from the start, on the same timeline.
        group.init_containers = [c if c in inits_changed else _fresh(old_inits[c.name])
                                 for c in inits] if inits else \
            [_fresh(c) for c in group.init_containers]
        group.containers = [c if c in changed else _fresh(old[c.name]) for c in containers] \
            if containers else [_fresh(c) for c in group.containers]
        for c in [*group.init_containers, *group.containers]:
            c.restarts_before = ran.get(c.name, 0)
        every = [*group.init_containers, *group.containers]
        created, scheduled = group.created, group.scheduled
        group.running_at = group.failed_at = None
        group.created = now   # plan() lays the timeline out from here
        plan(group, state.timing, set(), {c.raw["_norm"]: state.registries.pull_error(
            c.image, creds, access) for c in every},
            {c.raw["_norm"]: image_size_mb(c.raw["_norm"]) for c in every})
        # The same instance restarts: it is not scheduled again (it reads Updating).
        group.created, group.scheduled = created, scheduled
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


def _volumes(ctx: Ctx, group: Group, kind: str) -> list[dict[str, Any]]:
    """The group's volumes as the update gives them, those whose content changed only."""
    from vk_eci.emulator.actions_create import _config_files  # the create's own limits

    have = {str(v.get("Name", "")): v for v in get_list(group.raw, "Volume")}
    given = get_list(ctx.tree, "Volume")
    if kind == "RenewUpdate" and given and {str(v.get("Name", "")) for v in given
                                            if isinstance(v, dict)} != set(have):
        raise invalid("Volume", "a RenewUpdate names every volume of the group")
    out = []
    for i, raw in enumerate(given, 1):
        item = validate.dict_item(raw, f"Volume.{i}")
        name = get_str(item, "Name", path=f"Volume.{i}.", required=True)
        old = have.get(str(name))
        if old is None:
            raise invalid(f"Volume.{i}.Name", f"the group has no volume named {name!r}")
        vtype = get_str(item, "Type", path=f"Volume.{i}.") or str(old.get("Type", ""))
        if vtype not in UPDATABLE_VOLUMES or vtype != old.get("Type"):
            raise invalid(f"Volume.{i}.Type", f"{vtype!r}: only a volume's own type among "
                          f"{list(UPDATABLE_VOLUMES)} can be updated")
        if vtype == "ConfigFileVolume":
            _config_files(item.get(vtype), f"Volume.{i}.ConfigFileVolume.")
            new = _with_modes(item, old)
            if _files(new) != _files(old):
                out.append(new)
        elif item.get(vtype) != old.get(vtype):
            out.append({**item, "Type": vtype})
    return out


def _files(volume: dict[str, Any]) -> list[tuple[str, str]]:
    config = volume.get("ConfigFileVolume")
    return sorted((str(p.get("Path", "")), str(p.get("Content", "")))
                  for p in get_list(config, "ConfigFileToPath")) if isinstance(config, dict) \
        else []


def _with_modes(item: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The update's ConfigFile volume keeping what the update cannot say (file modes, the
    default mode) from the created one."""
    old_config, new_config = ({**v} if isinstance(v := d.get("ConfigFileVolume"), dict)
                              else {} for d in (old, item))
    modes = {str(p.get("Path", "")): p["Mode"] for p in get_list(old_config, "ConfigFileToPath")
             if isinstance(p, dict) and "Mode" in p}
    paths = [{**p, **({"Mode": modes[str(p.get("Path", ""))]}
                      if str(p.get("Path", "")) in modes else {})}
             for p in get_list(new_config, "ConfigFileToPath") if isinstance(p, dict)]
    config = {k: v for k, v in old_config.items() if k != "ConfigFileToPath"}
    return {"Name": item.get("Name"), "Type": "ConfigFileVolume",
            "ConfigFileVolume": {**config, "ConfigFileToPath": paths}}


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
