"""Groups with a real network and containers that run for real (``--group-network``).

:class:`LiveWorld` is what :class:`~vk_eci.emulator.state.State` calls at a group's create,
delete and removal when the emulator runs with ``group_network=True``: it gives the group its
namespace and address (``groupnet.py``), starts its mapped containers as processes
(``liveproc.py``) with their volumes prepared under a directory of the emulator's own, writes
the group's ``DnsConfig`` as the namespace's ``/etc/resolv.conf`` (``ip netns exec`` mounts
``/etc/netns/<ns>/resolv.conf`` there), and removes all of it again.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vk_eci.emulator.clock import Clock
from vk_eci.emulator.groupnet import GroupNetwork
from vk_eci.emulator.groups import ContainerDef, Group
from vk_eci.emulator.liveproc import ImagePrograms, LaunchSpec, LiveContainer, Mount, argv_for
from vk_eci.emulator.params import get_list
from vk_eci.emulator.timing import Timing

NETNS_ETC = Path("/etc/netns")


class LiveWorld:
    def __init__(self, network: GroupNetwork, programs: ImagePrograms, clock: Clock,
                 timing: Timing) -> None:
        self.network, self.programs, self.clock, self.timing = network, programs, clock, timing
        self.workdir = Path(tempfile.mkdtemp(prefix="vk-eci-groups-"))
        self.made: dict[str, list[Path]] = {}      # group id -> paths made on the host
        self.groups: dict[str, Group] = {}
        # (gone at, id) of deleted groups whose processes all ended before their grace period
        # did: the state's reaper takes them (``take_ended``).
        self.ended: list[tuple[float, str]] = []

    def next_ip(self) -> str:
        """The address the next group will get (it is taken at :meth:`attach`)."""
        taken = self.network.allocate()
        self.network.used.discard(taken)
        return taken

    def attach(self, group: Group) -> None:
        """Give ``group`` its namespace and start its mapped containers when the plan does."""
        group.intranet_ip = self.network.allocate(group.intranet_ip)
        netns = self.network.add_group(group.id, group.intranet_ip)
        self.groups[group.id] = group
        self.made[group.id] = []
        self._resolv_conf(group, netns)
        now = self.clock.now()
        for c in group.containers:
            program = self.programs.program_for(c.image)
            if program is None or c.start is None:
                continue
            spec = LaunchSpec(netns=netns, argv=tuple(argv_for(program, c.command, c.args)),
                              env=tuple(_env(c, group)), workdir=str(c.raw.get("WorkingDir", "")),
                              mounts=tuple(self._mounts(group, c)))
            c.live = LiveContainer(spec, self.clock, self.timing, group.restart_policy,
                                   functools.partial(self._changed, group))
            c.live.start_in(c.start - now)

    def _changed(self, group: Group) -> None:
        # The memos were valid "until the next change" of a timeline; a process is not on it.
        group.json_cache = None
        group.change_memo = None
        if group.deleted_at is None or group.gone_at is None:
            return
        finals = [c.live.final() if c.live is not None else None for c in group.containers]
        if all(f is not None for f in finals):
            # Every container ran for real and has exited: the group is gone now, as ECI's
            # is when its containers have stopped, not at the end of the grace period.
            group.gone_at = min(group.gone_at, self.clock.now())
            self.ended.append((group.gone_at, group.id))

    def take_ended(self) -> list[tuple[float, str]]:
        ended, self.ended = self.ended, []
        return ended

    def stop(self, group: Group) -> None:
        for c in group.containers:
            if c.live is not None:
                c.live.terminate()

    def remove(self, group: Group) -> None:
        """Kill what still runs and delete the namespace, the volumes and what we made."""
        if self.groups.pop(group.id, None) is None:
            return
        for c in group.containers:
            if c.live is not None:
                c.live.kill()
        self.network.remove_group(group.id, group.intranet_ip)
        shutil.rmtree(self.workdir / group.id, ignore_errors=True)
        shutil.rmtree(NETNS_ETC / self.network.netns_name(group.id), ignore_errors=True)
        for path in reversed(self.made.pop(group.id, [])):
            with contextlib.suppress(OSError):   # not empty any more: someone else's now
                path.rmdir() if path.is_dir() else path.unlink()

    def close(self) -> None:
        for group in list(self.groups.values()):
            self.remove(group)
        self.network.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _resolv_conf(self, group: Group, netns: str) -> None:
        dns = group.raw.get("DnsConfig")
        if not isinstance(dns, dict):
            return
        lines = [f"nameserver {s}" for s in get_list(dns, "NameServer")]
        search = [str(s) for s in get_list(dns, "Search")]
        if search:
            lines.append("search " + " ".join(search))
        options = [f"{o.get('Name', '')}:{o['Value']}" if o.get("Value") else str(o.get("Name"))
                   for o in get_list(dns, "Option") if isinstance(o, dict)]
        if options:
            lines.append("options " + " ".join(options))
        where = NETNS_ETC / netns
        where.mkdir(parents=True, exist_ok=True)
        (where / "resolv.conf").write_text("\n".join(lines) + "\n")

    def _mounts(self, group: Group, c: ContainerDef) -> list[Mount]:
        volumes = {str(v.get("Name")): v for v in get_list(group.raw, "Volume")
                   if isinstance(v, dict)}
        out: list[Mount] = []
        for m in get_list(c.raw, "VolumeMount"):
            if not isinstance(m, dict) or not m.get("MountPath"):
                continue
            volume = volumes.get(str(m.get("Name")))
            source = self._volume_dir(group, volume) if volume is not None else None
            if source is None:
                continue   # NFS, disks, host paths: not in the test world
            sub = str(m.get("SubPath") or "")
            if sub:
                source = source / sub
            target = posixpath.normpath(str(m["MountPath"]))
            self._remember_made(group, target)
            out.append(Mount(str(source), target,
                             str(m.get("ReadOnly", "False")).lower() == "true"))
        workdir = str(c.raw.get("WorkingDir") or "")
        if workdir:
            self._remember_made(group, workdir)
        return out

    def _volume_dir(self, group: Group, volume: dict[str, Any]) -> Path | None:
        kind = volume.get("Type")
        where = self.workdir / group.id / str(volume.get("Name"))
        if where.exists():
            return where
        if kind == "EmptyDirVolume":
            where.mkdir(parents=True)
            return where
        if kind == "ConfigFileVolume":
            where.mkdir(parents=True)
            config = volume.get("ConfigFileVolume")
            for item in get_list(config, "ConfigFileToPath") if isinstance(config, dict) else []:
                path = where / posixpath.normpath("/" + str(item.get("Path", ""))).lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(base64.b64decode(str(item.get("Content", ""))))
            return where
        return None

    def _remember_made(self, group: Group, target: str) -> None:
        """The launcher creates a missing mount point (or working directory) on the host's
        file system; remember the first missing ancestor so removal takes it away."""
        path = Path(target)
        missing: list[Path] = []
        while not path.exists() and path != path.parent:
            missing.append(path)
            path = path.parent
        self.made[group.id].extend(reversed(missing))


def _env(c: ContainerDef, group: Group) -> list[tuple[str, str]]:
    out = [("HOSTNAME", group.name)]
    for e in get_list(c.raw, "EnvironmentVar"):
        if not isinstance(e, dict) or not e.get("Key"):
            continue
        ref = e.get("FieldRef")
        if isinstance(ref, dict) and ref.get("FieldPath") == "status.podIP":
            out.append((str(e["Key"]), group.intranet_ip))   # what ECI resolves itself
        else:
            out.append((str(e["Key"]), str(e.get("Value", ""))))
    return out

