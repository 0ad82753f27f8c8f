"""Container groups rendered as ``DescribeContainerGroups`` answers them (SDK field names).

Fields that never change after create are rendered once and memoised on the group; only the
status, container states and events are computed per request.
"""

from __future__ import annotations

import json
from typing import Any

from vk_eci.emulator.clock import iso
from vk_eci.emulator.groups import (
    ContainerDef,
    Group,
    all_events,
    container_run,
    expired_at,
    next_change,
    status,
)
from vk_eci.emulator.lifecycle import RunState
from vk_eci.emulator.params import get_list
from vk_eci.emulator.placement import Placed
from vk_eci.emulator.timing import Timing


def _probe(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("InitialDelaySeconds", "PeriodSeconds", "TimeoutSeconds", "SuccessThreshold",
                "FailureThreshold"):
        if key in raw:
            out[key] = int(raw[key])
    if isinstance(raw.get("Exec"), dict):
        out["Execs"] = list(raw["Exec"].get("Command", []))
    if isinstance(raw.get("HttpGet"), dict):
        h = raw["HttpGet"]
        out["HttpGet"] = {"Path": h.get("Path", ""), "Port": int(h.get("Port", 0)),
                          "Scheme": h.get("Scheme", "HTTP")}
    if isinstance(raw.get("TcpSocket"), dict):
        out["TcpSocket"] = {"Port": int(raw["TcpSocket"].get("Port", 0)), "Host": ""}
    return out


def _static_container(c: ContainerDef) -> dict[str, Any]:
    raw = c.raw
    out: dict[str, Any] = {
        "Name": c.name, "Image": c.image, "ImagePullPolicy": c.pull_policy,
        "Cpu": c.cpu, "Memory": c.memory, "Gpu": int(raw.get("Gpu", 0) or 0),
        "WorkingDir": raw.get("WorkingDir", ""),
        "Args": list(c.args),
        "Ports": [{"Port": int(p.get("Port", 0)), "Protocol": p.get("Protocol", "TCP")}
                  for p in get_list(raw, "Port")],
        "VolumeMounts": [{"Name": m.get("Name", ""), "MountPath": m.get("MountPath", ""),
                          "ReadOnly": m.get("ReadOnly", "False").lower() == "true",
                          "SubPath": m.get("SubPath", ""),
                          "MountPropagation": m.get("MountPropagation", "None")}
                         for m in get_list(raw, "VolumeMount")],
        "EnvironmentVars": [_env(e) for e in get_list(raw, "EnvironmentVar")],
    }
    # The SDK names the command list differently for init and app containers.
    out["Command" if c.init else "Commands"] = list(c.command)
    if not c.init:
        out["Stdin"] = raw.get("Stdin", "False").lower() == "true"
        out["StdinOnce"] = raw.get("StdinOnce", "False").lower() == "true"
        out["Tty"] = raw.get("Tty", "False").lower() == "true"
        for key in ("LivenessProbe", "ReadinessProbe"):
            probe = _probe(raw.get(key))
            if probe is not None:
                out[key] = probe
    sc = raw.get("SecurityContext")
    if isinstance(sc, dict):
        out["SecurityContext"] = {
            "ReadOnlyRootFilesystem": sc.get("ReadOnlyRootFilesystem", "False").lower() == "true",
            "RunAsUser": int(sc.get("RunAsUser", 0) or 0),
            "Capability": {"Adds": list((sc.get("Capability") or {}).get("Add", []))},
        }
    return out


def _env(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Key": e.get("Key", ""), "Value": e.get("Value", "")}
    ref = e.get("FieldRef")
    if isinstance(ref, dict):
        out["ValueFrom"] = {"FieldRef": {"FieldPath": ref.get("FieldPath", "")}}
    return out


def _volume(v: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": v.get("Name", ""), "Type": v.get("Type", "")}
    if isinstance(v.get("EmptyDirVolume"), dict):
        out["EmptyDirVolumeMedium"] = v["EmptyDirVolume"].get("Medium", "")
        out["EmptyDirVolumeSizeLimit"] = v["EmptyDirVolume"].get("SizeLimit", "")
    if isinstance(v.get("NFSVolume"), dict):
        n = v["NFSVolume"]
        out["NFSVolumeServer"] = n.get("Server", "")
        out["NFSVolumePath"] = n.get("Path", "")
        out["NFSVolumeReadOnly"] = n.get("ReadOnly", "False").lower() == "true"
    if isinstance(v.get("ConfigFileVolume"), dict):
        out["ConfigFileVolumeConfigFileToPaths"] = [
            {"Content": p.get("Content", ""), "Path": p.get("Path", "")}
            for p in get_list(v["ConfigFileVolume"], "ConfigFileToPath")]
    if isinstance(v.get("DiskVolume"), dict):
        out["DiskVolumeDiskId"] = v["DiskVolume"].get("DiskId", "")
        out["DiskVolumeFsType"] = v["DiskVolume"].get("FsType", "")
    if isinstance(v.get("FlexVolume"), dict):
        f = v["FlexVolume"]
        out["FlexVolumeDriver"] = f.get("Driver", "")
        out["FlexVolumeFsType"] = f.get("FsType", "")
        out["FlexVolumeOptions"] = f.get("Options", "")
    return out


def static(group: Group) -> dict[str, Any]:
    if group.static_render is not None:
        return group.static_render
    raw = group.raw
    placed = group.placed or Placed(group.zone, "")
    dns = raw.get("DnsConfig") if isinstance(raw.get("DnsConfig"), dict) else None
    out: dict[str, Any] = {
        "ContainerGroupId": group.id,
        "ContainerGroupName": group.name,
        "RegionId": group.region,
        "ZoneId": group.zone,
        "Cpu": group.cpu,
        "Memory": group.memory,
        "InstanceType": group.instance_type,
        "SecurityGroupId": raw.get("SecurityGroupId", ""),
        "VSwitchId": placed.vswitch or raw.get("VSwitchId", ""),
        "VpcId": "vpc-emulator",
        "EniInstanceId": "eni-" + group.id[4:],
        "IntranetIp": group.intranet_ip,
        "InternetIp": placed.internet_ip,
        "Ipv6Address": placed.ipv6,
        "CreationTime": iso(group.created),
        "ExpiredTime": "",
        "RestartPolicy": group.restart_policy,
        "RamRoleName": raw.get("RamRoleName", ""),
        "ResourceGroupId": raw.get("ResourceGroupId", ""),
        "ComputeCategory": (get_list(raw, "ComputeCategory") or ["economy"])[0],
        "Discount": 0,
        "EphemeralStorage": int(raw.get("EphemeralStorage", 0) or 0),
        "SpotStrategy": raw.get("SpotStrategy", "NoSpot"),
        "SpotPriceLimit": float(raw.get("SpotPriceLimit", 0) or 0),
        "Tags": [{"Key": k, "Value": v} for k, v in group.tags],
        "Volumes": [_volume(v) for v in get_list(raw, "Volume")],
        "HostAliases": [{"Ip": h.get("Ip", ""), "Hostnames": list(h.get("Hostname", []))}
                        for h in get_list(raw, "HostAliase")],
        "DnsConfig": {"NameServers": list(dns.get("NameServer", [])),
                      "Searches": list(dns.get("Search", [])),
                      "Options": [{"Name": o.get("Name", ""), "Value": o.get("Value", "")}
                                  for o in get_list(dns, "Option")]} if dns else {},
        "EciSecurityContext": {"Sysctls": [
            {"Name": s.get("Name", ""), "Value": s.get("Value", "")}
            for s in get_list(raw.get("SecurityContext") or {}, "Sysctl")]},
        "_containers": [_static_container(c) for c in group.containers],
        "_init": [_static_container(c) for c in group.init_containers],
    }
    group.static_render = out
    return out


def _state(phase: str, *, start: float | None = None, end: float | None = None,
           code: int = 0, reason: str = "", message: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"State": phase, "DetailStatus": reason, "Reason": reason,
                           "Message": message, "ExitCode": code, "Signal": 0,
                           "StartTime": iso(start) if start is not None else "",
                           "FinishTime": iso(end) if end is not None else ""}
    return out


def _terminated(start: float, end: float, code: int) -> dict[str, Any]:
    return _state("Terminated", start=start, end=end, code=code,
                  reason="Completed" if code == 0 else "Error")


def _inits_done(group: Group, now: float, timing: Timing) -> bool:
    for i in group.init_containers:
        d = i.program.duration
        if i.start is None or d is None or i.program.exit_code != 0:
            return False
        if now < i.start + timing.d(d):
            return False
    return True


def container_states(group: Group, c: ContainerDef, run: RunState | None, now: float,
                     timing: Timing) -> dict[str, Any]:
    prev: dict[str, Any] = {}
    if run is None:
        if group.deleted_at is not None:
            now = min(now, group.deleted_at)   # never started, and now never will
        if c.pull_error is not None and c.pull_start is not None and now >= c.pull_start:
            cur = _state("Waiting", reason="ImagePullBackOff" if now >= c.pull_start + timing.d(
                timing.pull_retry_s) else "ErrImagePull", message=c.pull_error)
        else:
            cur = _state("Waiting", reason="PodInitializing"
                         if not c.init and not _inits_done(group, now, timing)
                         else "ContainerCreating")
        return {"CurrentState": cur, "PreviousState": prev, "RestartCount": c.restarts_before,
                "Ready": False}
    code = c.program.exit_code if run.exit_code is None else run.exit_code
    if run.prev_start is not None and run.prev_end is not None:
        prev = _terminated(run.prev_start, run.prev_end, c.program.exit_code
                           if run.prev_exit_code is None else run.prev_exit_code)
    if run.phase == "Running":
        cur = _state("Running", start=run.start)
    elif run.phase == "Terminated" and run.end == expired_at(group):
        # Killed by the spot reclaim, whatever the program would have returned.
        cur = _state("Terminated", start=run.start, end=run.end, code=137, reason="Expired",
                     message="the spot instance was released")
    elif run.phase == "Terminated":
        assert run.end is not None
        cur = _terminated(run.start, run.end, code)
    else:
        cur = _state("Waiting", reason="CrashLoopBackOff",
                     message=f"back-off restarting failed container {c.name}")
    return {"CurrentState": cur, "PreviousState": prev,
            "RestartCount": c.restarts_before + run.restart_count,
            "Ready": run.phase == "Running"}


class RawList(list[str]):
    """A JSON array whose items are already-encoded JSON texts (spliced in by the server)."""


def render_group_json(group: Group, timing: Timing, now: float, *, with_events: bool) -> str:
    """The group as JSON text, reused until the next moment its answer can change: a node
    polling thousands of groups mostly asks about ones that have not moved."""
    memo = group.json_cache
    if memo is not None and memo[2] == with_events and memo[0] <= now < memo[1]:
        return memo[3]
    text = json.dumps(render_group(group, timing, now, with_events=with_events),
                      separators=(",", ":"))
    group.json_cache = (now, next_change(group, timing, now), with_events, text)
    return text


def render_group(group: Group, timing: Timing, now: float, *, with_events: bool) -> dict[str, Any]:
    base = static(group)
    out = {k: v for k, v in base.items() if not k.startswith("_")}
    st, final_at = status(group, timing, now)
    out["Status"] = st
    out["SucceededTime"] = iso(final_at) if st == "Succeeded" and final_at else ""
    out["FailedTime"] = iso(final_at) if st == "Failed" and final_at else ""
    out["ExpiredTime"] = iso(final_at) if st == "Expired" and final_at else ""
    containers = []
    for c, rendered in zip(group.containers, base["_containers"], strict=True):
        item = dict(rendered)
        item.update(container_states(group, c, container_run(group, c, timing, now), now, timing))
        containers.append(item)
    inits = []
    for c, rendered in zip(group.init_containers, base["_init"], strict=True):
        item = dict(rendered)
        item.update(container_states(group, c, container_run(group, c, timing, now), now, timing))
        inits.append(item)
    out["Containers"] = containers
    out["InitContainers"] = inits
    out["Events"] = ([e.render(group.id) for e in all_events(group, timing, now)]
                     if with_events else [])
    return out
