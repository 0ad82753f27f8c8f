"""``CreateContainerGroup``: validation, idempotency, cache use, and the start-up plan."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from vk_eci.emulator import matching, placement, specs, validate
from vk_eci.emulator.caches import Cache
from vk_eci.emulator.catalog import image_size_mb
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.errors import ApiError, invalid, missing
from vk_eci.emulator.groups import ContainerDef, Group, plan
from vk_eci.emulator.params import (
    get_bool,
    get_float,
    get_int,
    get_list,
    get_str,
    get_str_list,
    get_tags,
)
from vk_eci.emulator.programs import parse

MAX_CONTAINERS = 20
MAX_VOLUMES = 20
# ECI's documented ConfigFile volume limits (help.aliyun.com, "Mount a ConfigFile volume").
MAX_CONFIG_FILE = 32 * 1024
MAX_CONFIG_VOLUME = 60 * 1024
VOLUME_TYPES = {"EmptyDirVolume", "NFSVolume", "ConfigFileVolume", "DiskVolume", "FlexVolume",
                "HostPathVolume"}
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}
RESTART_POLICIES = {"Always", "OnFailure", "Never"}
# ECI's DnsPolicy: the instance's resolvers, or exactly DnsConfig (no Kubernetes policy names).
DNS_POLICIES = {"Default", "None"}


def _containers(ctx: Ctx, key: str, *, init: bool, volumes: set[str]) -> list[ContainerDef]:
    out: list[ContainerDef] = []
    names: set[str] = set()
    for i, raw in enumerate(get_list(ctx.tree, key, max_items=MAX_CONTAINERS), 1):
        path = f"{key}.{i}."
        item = validate.dict_item(raw, f"{key}.{i}")
        name = get_str(item, "Name", path=path, required=True)
        image = get_str(item, "Image", path=path, required=True)
        assert name is not None and image is not None
        if not validate.NAME_RE.match(name) or len(name) > 63:
            raise invalid(f"{path}Name", f"{name!r} is not a valid container name")
        if name in names:
            raise invalid(f"{path}Name", f"container name {name!r} is used twice")
        names.add(name)
        item["_norm"] = validate.image(image, f"{path}Image")
        policy = get_str(item, "ImagePullPolicy", path=path) or "IfNotPresent"
        if policy not in PULL_POLICIES:
            raise invalid(f"{path}ImagePullPolicy", f"{policy!r} is not one of "
                          f"{sorted(PULL_POLICIES)}")
        cpu = get_float(item, "Cpu", path=path) or 0.0
        memory = get_float(item, "Memory", path=path) or 0.0
        if cpu < 0 or memory < 0:
            raise invalid(f"{path}Cpu", "CPU and memory must not be negative")
        for j, mount in enumerate(get_list(item, "VolumeMount"), 1):
            mname = get_str(validate.dict_item(mount, f"{path}VolumeMount.{j}"), "Name",
                            path=f"{path}VolumeMount.{j}.", required=True)
            if mname not in volumes:
                raise invalid(f"{path}VolumeMount.{j}.Name", f"no volume named {mname!r}")
        command = get_str_list(item, "Command", path=path)
        args = get_str_list(item, "Arg", path=path)
        out.append(ContainerDef(name, image, cpu, memory, policy, command, args,
                                parse(command, args), item, init=init))
    return out


def _volumes(ctx: Ctx) -> set[str]:
    names: set[str] = set()
    for i, raw in enumerate(get_list(ctx.tree, "Volume", max_items=MAX_VOLUMES), 1):
        item = validate.dict_item(raw, f"Volume.{i}")
        name = get_str(item, "Name", path=f"Volume.{i}.", required=True)
        vtype = get_str(item, "Type", path=f"Volume.{i}.", required=True)
        assert name is not None
        if vtype not in VOLUME_TYPES:
            raise invalid(f"Volume.{i}.Type", f"{vtype!r} is not one of {sorted(VOLUME_TYPES)}")
        if name in names:
            raise invalid(f"Volume.{i}.Name", f"volume name {name!r} is used twice")
        # What ECI needs to mount a network or disk volume.
        for field in {"NFSVolume": ("Server",), "DiskVolume": ("DiskId",)}.get(vtype or "", ()):
            sub = item.get(vtype or "")
            if not isinstance(sub, dict) or not sub.get(field):
                raise missing(f"Volume.{i}.{vtype}.{field}")
        if vtype == "HostPathVolume":
            # ECI allow-lists HostPath volumes; a DataCache mount is the documented use.
            if not get_str(ctx.tree, "DataCacheBucket"):
                raise ApiError("InvalidParameter.HostPathVolume", "Only users in the whitelist "
                               "can mount HostPath volumes; a DataCache needs DataCacheBucket.",
                               400)
            sub = item.get(vtype)
            if not isinstance(sub, dict) or not str(sub.get("Path", "")).startswith("/"):
                raise missing(f"Volume.{i}.HostPathVolume.Path")
        if vtype == "ConfigFileVolume" and isinstance(item.get(vtype), dict):
            _config_files(item[vtype], f"Volume.{i}.ConfigFileVolume.")
        names.add(name)
    return names


def _config_files(volume: Any, path: str) -> None:
    """ECI's documented ConfigFile limits: a file at most 32 KB, a volume's files 60 KB."""
    total = 0
    for j, raw in enumerate(get_list(volume, "ConfigFileToPath", path=path), 1):
        where = f"{path}ConfigFileToPath.{j}."
        item = validate.dict_item(raw, f"{where[:-1]}")
        try:
            size = len(base64.b64decode(get_str(item, "Content", path=where) or "",
                                        validate=True))
        except binascii.Error:
            raise invalid(f"{where}Content", "is not base64") from None
        if size > MAX_CONFIG_FILE:
            raise invalid(f"{where}Content", f"a config file is at most {MAX_CONFIG_FILE} "
                                             f"bytes, this one {size}")
        total += size
        if total > MAX_CONFIG_VOLUME:
            raise invalid(f"{path}ConfigFileToPath", f"a ConfigFile volume holds at most "
                                                     f"{MAX_CONFIG_VOLUME} bytes")


def _spec(ctx: Ctx, containers: list[ContainerDef],
          inits: list[ContainerDef]) -> tuple[float, float, str]:
    instance_type = get_str(ctx.tree, "InstanceType")
    cpu = get_float(ctx.tree, "Cpu")
    memory = get_float(ctx.tree, "Memory")
    if instance_type:
        first = instance_type.split(",")[0].strip()
        if not first.startswith("ecs."):
            raise invalid("InstanceType", f"{first!r} is not an ECS instance type (ecs.…)")
        known = placement.instance_size(first)
        if known is not None:
            return known[0], known[1], first
        return cpu or specs.DEFAULT[0], memory or specs.DEFAULT[1], first
    if cpu is not None or memory is not None:
        if cpu is None or memory is None:
            raise missing("Memory" if cpu is not None else "Cpu")
        if not specs.is_supported(cpu, memory):
            raise invalid("Cpu", f"{cpu:g} vCPU with {memory:g} GiB is not a supported spec "
                          f"({specs.describe()})", code="InvalidParameter.CpuMemory")
        return cpu, memory, ""
    app_cpu = sum(c.cpu for c in containers)
    app_mem = sum(c.memory for c in containers)
    need_cpu = max([app_cpu, *(c.cpu for c in inits)])
    need_mem = max([app_mem, *(c.memory for c in inits)])
    if need_cpu == 0 and need_mem == 0:
        return specs.DEFAULT[0], specs.DEFAULT[1], ""
    rounded = specs.round_up(need_cpu, need_mem)
    if rounded is None:
        raise invalid("Container", f"containers need {need_cpu:g} vCPU and {need_mem:g} GiB, "
                      "more than the largest spec (64 vCPU, 512 GiB)",
                      code="InvalidParameter.CpuMemory")
    return rounded[0], rounded[1], ""


def _use_cache(ctx: Ctx, norm: list[str]) -> tuple[Cache | None, str]:
    """The cache the group starts from and how it was chosen: "explicit", "hit" (all images),
    "partial", "miss" or "" (no cache asked for)."""
    state = ctx.state
    snapshot = get_str(ctx.tree, "ImageSnapshotId")
    if snapshot:
        state.caches.refresh(ctx.now)
        cache = state.caches.caches.get(snapshot)
        if cache is None:
            raise ApiError("InvalidImageSnapshotId.NotFound",
                           f"The specified image cache {snapshot} does not exist.", 400)
        st = cache.status(ctx.now)
        if st != "Ready":
            raise ApiError("IncorrectImageCacheStatus",
                           f"The specified image cache {snapshot} is {st}, not Ready.", 400)
        return cache, "explicit"
    if get_bool(ctx.tree, "AutoMatchImageCache"):
        ranked = matching.rank(state.caches.refresh(ctx.now), norm, ctx.now, state.model,
                               extra_storage_gib=get_int(ctx.tree, "EphemeralStorage") or 0)
        if ranked:
            return ranked[0].cache, "hit" if ranked[0].complete else "partial"
        return None, "miss"
    return None, ""


def create_container_group(ctx: Ctx) -> dict[str, Any]:
    state, tree = ctx.state, ctx.tree
    token = get_str(tree, "ClientToken")
    if token is not None and len(token) > 64:
        raise invalid("ClientToken", "at most 64 ASCII characters")
    fingerprint = ctx.fingerprint(skip=frozenset({"DryRun"}))
    if token:
        seen = state.tokens.get(("CreateContainerGroup", token))
        if seen is not None:
            if seen.fingerprint != fingerprint:
                raise ApiError("IdempotentParameterMismatch", "The request uses the same client "
                               f"token {token!r} as a previous, but non-identical request.", 400)
            return {"ContainerGroupId": seen.resource_id}
    name = validate.group_name(get_str(tree, "ContainerGroupName"))
    restart = get_str(tree, "RestartPolicy") or "Always"
    if restart not in RESTART_POLICIES:
        raise invalid("RestartPolicy", f"{restart!r} is not one of {sorted(RESTART_POLICIES)}")
    dns_policy = get_str(tree, "DnsPolicy")
    if dns_policy is not None and dns_policy not in DNS_POLICIES:
        raise invalid("DnsPolicy", f"{dns_policy!r} is not one of {sorted(DNS_POLICIES)}")
    tags = get_tags(tree)
    volumes = _volumes(ctx)
    containers = _containers(ctx, "Container", init=False, volumes=volumes)
    if not containers:
        raise missing("Container.1.Name")
    inits = _containers(ctx, "InitContainer", init=True, volumes=volumes)
    clash = {c.name for c in containers} & {c.name for c in inits}
    if clash:
        raise invalid("InitContainer", f"names {sorted(clash)} are also app container names")
    cpu, memory, instance_type = _spec(ctx, containers, inits)
    gpus = placement.check_gpus(instance_type, containers)
    seq = state.next_seq()
    placed = placement.place(tree, zones=state.zones, seq=seq, now=ctx.now,
                             instance_type=instance_type,
                             price=placement.spot_price(cpu, memory, gpus))
    creds = validate.credentials(tree)
    grace = get_int(tree, "TerminationGracePeriodSeconds", lo=0)
    get_int(tree, "ActiveDeadlineSeconds", lo=1)
    all_defs = [*inits, *containers]
    norm = list(dict.fromkeys(c.raw["_norm"] for c in all_defs))
    cache, how = _use_cache(ctx, norm)
    if ctx.faults.out_of_stock:
        raise ApiError("RecommendEmpty.InstanceTypeNoStock", "The specified instance type "
                       f"({cpu:g} vCPU, {memory:g} GiB) is out of stock in the zone.", 400)
    if get_bool(tree, "DryRun"):
        raise ApiError("DryRunOperation", "Request validation has been passed with DryRun flag "
                       "set.", 400)

    now = ctx.now
    ip = state.ip_for(seq)
    if (get_str(tree, "FixedIp") or "").lower() == "true":
        # The same name (namespace + pod) gets its address back, as ECI's fixed IP does.
        ip = state.fixed_ips.setdefault(name, ip)
    wanted_ip = get_str(tree, "PrivateIpAddress")
    if wanted_ip:
        # ECI assigns the address asked for if it is idle, and refuses it otherwise.
        if any(g.intranet_ip == wanted_ip for g in state.groups.values()):
            raise ApiError("InvalidParameter.PrivateIpAddress", f"The private IP address "
                           f"{wanted_ip} is already in use.", 400)
        ip = wanted_ip
    group = Group(state.new_id("eci-"), name, state.region, placed.zone, now, cpu, memory,
                  instance_type, restart, tags, containers, inits, tree, ip, seq)
    group.placed = placed
    if grace is not None:
        group.grace_s = float(grace)
    present: set[str] = set()
    if cache is not None:
        group.cache_id = cache.id
        present = matching.held(cache, norm, state.model)
        cache.last_matched = now
    sizes = {key: image_size_mb(key) for key in norm}
    access = placement.registry_access(tree)
    errors = {c.raw["_norm"]: state.registries.pull_error(c.image, creds, access)
              for c in all_defs}
    plan(group, state.timing, present, errors, sizes,
         go_durations=state.model.pull_duration == "go")
    _cache_events(ctx, group, cache, how, norm, creds)
    if state.live is not None:
        state.live.attach(group)   # its namespace, address and real processes
    state.add_group(group)
    if token:
        from vk_eci.emulator.state import TokenRecord

        state.tokens[("CreateContainerGroup", token)] = TokenRecord(fingerprint, group.id)
    return {"ContainerGroupId": group.id}


def _cache_events(ctx: Ctx, group: Group, cache: Cache | None, how: str, norm: list[str],
                  creds: list[tuple[str, str, str]]) -> None:
    # ECI decides on the cache when it accepts the create, before scheduling.
    at = group.created
    model = ctx.state.model
    if cache is not None:
        group.event("Normal", "SuccessfulHitImageCache", f"[eci.imagecache]Successfully hit "
                    f"image cache {cache.id}, eci will be scheduled with this image cache.", at)
    if how == "miss":
        group.event("Warning", "ImageCacheMissed", "[eci.imagecache]Missed image cache.", at)
    if not (how == "miss" or (how == "partial" and model.auto_create == "partial")):
        return
    from vk_eci.emulator.actions_caches import new_cache

    images = [c.image for c in [*group.init_containers, *group.containers]]
    images = list(dict.fromkeys(images))[:20]
    created = new_cache(ctx, f"auto-create-for-{group.id}"[:64], images,
                        model.auto_cache_size_gib, None, [], creds)
    created.auto_retention = model.auto_cache_retention == "eci"
    group.event("Normal", "ImageCacheAutoCreated", f"[eci.imagecache]Image cache {created.id} "
                "is auto created, it will be used by later instances.", at)
