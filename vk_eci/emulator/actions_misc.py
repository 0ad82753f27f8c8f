"""``DescribeRegions`` (the node's health call) and the metric actions."""

from __future__ import annotations

from typing import Any

from vk_eci.emulator.clock import iso
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.errors import group_not_found, invalid
from vk_eci.emulator.groups import Group
from vk_eci.emulator.params import get_json_id_list, get_str
from vk_eci.emulator.signature import parse_iso

KNOWN_REGIONS = ("cn-hangzhou", "cn-beijing", "cn-shanghai", "cn-shenzhen", "cn-zhangjiakou",
                 "cn-hongkong", "ap-southeast-1", "us-west-1", "eu-central-1")


def describe_regions(ctx: Ctx) -> dict[str, Any]:
    served = ctx.state.region
    names = list(dict.fromkeys((served, *KNOWN_REGIONS)))
    regions = []
    for r in names:
        zones = [f"{r}-{s}" for s in ("h", "i", "j", "k")]
        regions.append({"RegionId": r, "RegionEndpoint": f"eci.{r}.aliyuncs.com",
                        "Zones": zones, "RecommendZones": zones[:2]})
    return {"Regions": regions}


DEFAULT_CPU_LOAD = 0.1   # a running container uses 10% of its CPU unless a test says otherwise


def cpu_load_at(group: Group, ts: float) -> float:
    load = DEFAULT_CPU_LOAD
    for since, value in group.cpu_load:
        if since > ts:
            break
        load = value
    return load


def cpu_busy_seconds(group: Group, start: float, ts: float) -> float:
    """The integral of the CPU load from ``start`` to ``ts``: a cumulative counter that never
    goes back when a test changes the load (metrics-server takes rates of it)."""
    total, t, load = 0.0, start, DEFAULT_CPU_LOAD
    for since, value in group.cpu_load:
        if since >= ts:
            break
        if since > t:
            total += load * (since - t)
            t = since
        load = value
    return total + load * max(0.0, ts - t)


def set_cpu_load(group: Group, load: float, at: float) -> None:
    """From ``at`` on, ``group``'s containers use ``load`` (0..1) of their CPU."""
    if not 0.0 <= load <= 1.0:
        raise ValueError(f"cpu load must be between 0 and 1, got {load}")
    group.cpu_load = [*(c for c in group.cpu_load if c[0] < at), (at, load)]


def _usage(group: Group, now: float, ts: float) -> dict[str, Any]:
    """Deterministic, plausible usage: 10% CPU (or the load a test set), 30% memory of each
    running container."""
    containers = []
    total_nano = total_ws = total_cpu_ns = 0
    load = cpu_load_at(group, ts)
    for c in group.containers:
        cpu = c.cpu or group.cpu / len(group.containers)
        mem_bytes = int((c.memory or group.memory / len(group.containers)) * 1024 ** 3)
        running = c.start is not None and ts >= c.start
        nano = int(cpu * 1e9 * load) if running else 0
        ws = int(mem_bytes * 0.3) if running else 0
        cpu_ns = int(cpu * 1e9 * cpu_busy_seconds(group, c.start, ts)) if running and \
            c.start is not None else 0
        total_nano += nano
        total_ws += ws
        total_cpu_ns += cpu_ns
        containers.append({
            "Name": c.name,
            "CPU": {"UsageNanoCores": nano, "UsageCoreNanoSeconds": cpu_ns,
                    "Limit": int(cpu * 1000), "Load": int(load * 100) if running else 0},
            "Memory": {"UsageBytes": ws + ws // 10, "WorkingSet": ws, "Rss": ws, "Cache": ws // 10,
                       "AvailableBytes": mem_bytes - ws},
        })
    elapsed = max(0.0, ts - group.created)
    return {
        "Timestamp": iso(ts),
        "CPU": {"UsageNanoCores": total_nano, "UsageCoreNanoSeconds": total_cpu_ns,
                "Limit": int(group.cpu * 1000), "Load": int(load * 100) if total_nano else 0},
        "Memory": {"UsageBytes": total_ws + total_ws // 10, "WorkingSet": total_ws,
                   "Rss": total_ws, "Cache": total_ws // 10,
                   "AvailableBytes": int(group.memory * 1024 ** 3) - total_ws},
        "Containers": containers,
        "Network": {"Interfaces": [{"Name": "eth0", "RxBytes": int(elapsed * 2048),
                                    "TxBytes": int(elapsed * 1024), "RxPackets": int(elapsed * 4),
                                    "TxPackets": int(elapsed * 2), "RxErrors": 0, "TxErrors": 0,
                                    "RxDrops": 0, "TxDrops": 0}]},
        "Disk": [],
        "Filesystem": [{"FsName": "rootfs", "Capacity": 30 * 1024 ** 3,
                        "Usage": 1024 ** 3, "Available": 29 * 1024 ** 3, "Category": "system"}],
    }


def describe_multi_container_group_metric(ctx: Ctx) -> dict[str, Any]:
    ids = get_json_id_list(ctx.tree, "ContainerGroupIds", max_items=20)
    if not ids:
        raise invalid("ContainerGroupIds", "give a JSON array of 1 to 20 container group ids")
    now = ctx.now
    datas = []
    for gid in ids:
        group = ctx.state.groups.get(gid)
        if group is None:
            continue
        datas.append({"ContainerGroupId": gid, "Records": [_usage(group, now, now)]})
    return {"MonitorDatas": datas}


def describe_container_group_metric(ctx: Ctx) -> dict[str, Any]:
    tree, now = ctx.tree, ctx.now
    gid = get_str(tree, "ContainerGroupId", required=True)
    assert gid is not None
    group = ctx.state.groups.get(gid)
    if group is None:
        raise group_not_found(gid)
    period = int(get_str(tree, "Period") or 60)
    if period not in (5, 15, 30, 60, 300, 900, 1800, 3600):
        raise invalid("Period", f"{period} is not one of 5, 15, 30, 60, 300, 900, 1800, 3600")
    end = _time(tree, "EndTime", now)
    start = _time(tree, "StartTime", end - 300)
    if start > end:
        raise invalid("StartTime", "is after EndTime")
    start = max(start, group.created)
    records: list[dict[str, Any]] = []
    ts = start
    while ts <= end and len(records) < 1440:
        records.append(_usage(group, now, ts))
        ts += period
    return {"ContainerGroupId": gid, "Records": records}


def _time(tree: dict[str, Any], name: str, default: float) -> float:
    raw = get_str(tree, name)
    if not raw:
        return default
    when = parse_iso(raw)
    if when is None:
        raise invalid(name, f"{raw!r} is not an ISO 8601 UTC time (2024-01-01T00:00:00Z)")
    return when
