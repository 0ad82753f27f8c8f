"""A real network for container groups (``vk-eci emulator --group-network``; root, iproute2).

The emulator makes a Linux bridge on a free private /24 from ``10.251.0.0/16`` (chosen under an
exclusive lock among the subnets no address or route on the host uses, so several emulators on
one machine never collide; the node networks of the test control plane use ``10.250.0.0/16``).
The bridge carries the subnet's first address on the host, so the host's root namespace (and
what it runs: the API server and the emulator on the node network's host end) reaches every
group over the connected route. Each group gets a network namespace ``vkeci-gNNN-<id>`` (NNN:
the bridge's number) with a veth pair: ``eth0`` inside carries the IntranetIp the emulator
reports for the group, the other end is a port of the bridge; the namespace's default route
points at the bridge address. An address is handed out again once its group is gone (the
lowest free one first), and ``eth0``'s MAC address follows from the address
(:func:`mac_for`): a group that takes a freed address also takes its MAC, so the ARP entries
other groups still hold for that address stay right. With a random MAC they kept the gone
group's: a group that reached the old holder (a pod talking to a Deployment's replica) could
not reach the new one for 15-45 s, until the kernel's entry went stale and was probed again
(an ARP packet the newcomer sends may repair it sooner, but not within the entry's 1 s
``locktime`` after its last change, nor if the newcomer sends nothing). In a VPC, which answers
ARP itself, a reused address is reached at once.

Nothing leaves the machine: no NAT, and policy rules make every forwarded packet that enters
from the bridge unreachable unless it is for a node network of the test control plane
(``10.250.0.0/16``, veth pairs on this host), whatever the host's ``ip_forward`` says. So a
group reaches the host's own addresses (the API server on a node network's host end), the
other groups, and a node's namespace if that routes the subnet via its host end (forwarding is
switched on for the bridge alone; the host end's forwarding is the node network's business,
see docs/DEVELOPING.md), and nothing else.
Deleting a group deletes its namespace; :meth:`GroupNetwork.close` deletes every namespace,
the bridge and the rules. A network left by an emulator that was killed is removed by the
next one that starts (its owner pid is recorded in ``/run/vk-eci/groupnet``).

Synchronous ``ip`` calls (a few milliseconds each): the emulator is a test world.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from vk_eci import hostnet

POOL = ipaddress.IPv4Network("10.251.0.0/16")
# The test control plane's node networks (vk_eci/controlplane/netns.py, which the emulator may
# not import): the only addresses beyond the host that groups may be forwarded to.
NODE_POOL = "10.250.0.0/16"
LOCK = Path("/run/lock/vk-eci-group-network.lock")
REGISTRY = Path("/run/vk-eci/groupnet")
NETNS_PREFIX = "vkeci-g"


class GroupNetworkError(RuntimeError):
    """The group network could not be made or changed; the message says which step and why."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return hostnet.ip(*args, check=check, error=GroupNetworkError)


def netns_list() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class GroupNetwork:
    """One emulator's bridge and its groups' namespaces. ``gateway`` is the bridge's address
    (the groups' default route); ``subnet`` the /24 their addresses come from."""

    bridge: str = ""
    subnet: ipaddress.IPv4Network = POOL
    gateway: str = ""
    rule_pref: int = 0
    netns: dict[str, str] = field(default_factory=dict)     # group id -> namespace
    used: set[str] = field(default_factory=set)             # addresses handed out

    @classmethod
    def create(cls) -> GroupNetwork:
        with hostnet.locked(LOCK):
            _collect_stale()
            used = hostnet.used_networks()
            subnet = next((s for s in POOL.subnets(new_prefix=24)
                           if not any(s.overlaps(u) for u in used)), None)
            if subnet is None:
                raise GroupNetworkError(f"no free /24 left in {POOL} (see `ip -br addr`)")
            index = subnet.network_address.packed[2]
            net = cls(bridge=f"vkebr{index:03d}", subnet=subnet,
                      gateway=str(subnet.network_address + 1), rule_pref=31000 + 2 * index)
            try:
                # A fixed address: a bridge without one takes its lowest port's, so deleting
                # that group's link would change it and leave every other group's ARP entry
                # for the gateway stale (~30 s without a route to the host).
                _ip("link", "add", net.bridge, "address", f"02:76:6b:65:62:{index:02x}",
                    "type", "bridge")
                _ip("addr", "add", f"{net.gateway}/24", "dev", net.bridge)
                _ip("link", "set", net.bridge, "up")
                # Whatever enters from the bridge and is neither for this host nor for a node
                # network on it is dropped; forwarding is switched on for the bridge alone, so
                # a node's namespace that routes the subnet via its host end gets answers.
                _ip("rule", "add", "iif", net.bridge, "to", NODE_POOL, "lookup", "main", "pref",
                    str(net.rule_pref))
                _ip("rule", "add", "iif", net.bridge, "unreachable", "pref",
                    str(net.rule_pref + 1))
                Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/forwarding").write_text("1\n")
                REGISTRY.mkdir(parents=True, exist_ok=True)
                (REGISTRY / f"{net.bridge}.json").write_text(json.dumps(
                    {"pid": os.getpid(), "pref": net.rule_pref}))
            except GroupNetworkError:
                net.close()
                raise
        return net

    @property
    def index(self) -> int:
        return int(self.bridge.removeprefix("vkebr"))

    def netns_name(self, group_id: str) -> str:
        """``vkeci-gNNN-<id>``: NNN is the bridge's, so that emulators started with the same
        seed (the same group ids) on one machine never share a name."""
        return f"{NETNS_PREFIX}{self.index:03d}-{group_id.removeprefix('eci-')}"

    def allocate(self, wanted: str | None = None) -> str:
        """A free address of the subnet (``wanted`` if given and free: a fixed IP)."""
        if wanted is not None and wanted not in self.used and \
                ipaddress.IPv4Address(wanted) in self.subnet and wanted != self.gateway:
            self.used.add(wanted)
            return wanted
        for host in list(self.subnet.hosts())[1:]:
            if str(host) not in self.used:
                self.used.add(str(host))
                return str(host)
        raise GroupNetworkError(f"no free address left in {self.subnet}")

    def add_group(self, group_id: str, address: str) -> str:
        """Make ``group_id``'s namespace with ``address`` on its eth0 (its MAC address
        :func:`mac_for` ``address``); returns its name."""
        name, link = self.netns_name(group_id), self._link(group_id)
        try:
            _ip("netns", "add", name)
            self.netns[group_id] = name
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "address",
                mac_for(address), "netns", name)
            _ip("link", "set", link, "master", self.bridge, "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "route", "add", "default", "via", self.gateway)
        except GroupNetworkError:
            self.remove_group(group_id)
            raise
        return name

    def _link(self, group_id: str) -> str:
        """The host end of the group's veth pair (a port of the bridge): at most 15 bytes."""
        return f"vg{self.index:03d}{group_id.removeprefix('eci-')[:10]}"

    def remove_group(self, group_id: str, address: str | None = None) -> None:
        """Delete the namespace and its veth pair. Processes in it must be gone."""
        name = self.netns.pop(group_id, None)
        if name is not None and name in netns_list():
            _kill_inside(name)
            # The pair now, not with the namespace (the kernel frees that asynchronously): the
            # bridge must have forgotten the port, and what it learned there, before the
            # address, and with it the MAC address, goes to another group.
            _ip("link", "del", self._link(group_id), check=False)
            _ip("netns", "del", name, check=False)
        if address is not None:
            self.used.discard(address)

    def close(self) -> None:
        for group_id in list(self.netns):
            self.remove_group(group_id)
        _remove_bridge(self.bridge, self.rule_pref)


def mac_for(address: str) -> str:
    """The MAC address of the group ``eth0`` that carries ``address``: ``02:76:6b:67`` (locally
    administered, ``g`` for group; the bridges' are ``02:76:6b:65:62:NN``) and the address's
    last two bytes (the bridge's number and the host: unique among every emulator's groups)."""
    packed = ipaddress.IPv4Address(address).packed
    return f"02:76:6b:67:{packed[2]:02x}:{packed[3]:02x}"


def _kill_inside(netns: str) -> None:
    """What still runs in ``netns`` would keep it alive after its deletion."""
    result = _ip("netns", "pids", netns, check=False)
    for pid in (int(p) for p in result.stdout.split() if p.isdigit()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _remove_bridge(bridge: str, pref: int) -> None:
    for p in (pref, pref + 1) if pref else ():
        while _ip("rule", "del", "pref", str(p), check=False).returncode == 0:
            pass
    if bridge and _ip("link", "show", "dev", bridge, check=False).returncode == 0:
        _ip("link", "del", bridge, check=False)
    (REGISTRY / f"{bridge}.json").unlink(missing_ok=True)


def _collect_stale() -> None:
    """Remove the bridges (and the namespaces on them) of emulators that are gone."""
    records = sorted(REGISTRY.glob("vkebr*.json")) if REGISTRY.is_dir() else []
    for record in records:
        try:
            data = json.loads(record.read_text())
            pid, pref = int(data["pid"]), int(data["pref"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _pid_alive(pid):
            continue
        bridge = record.name.removesuffix(".json")
        # Deleting a group's namespace deletes its veth pair, the bridge's port, too.
        prefix = GroupNetwork(bridge=bridge).netns_name("")
        for name in netns_list():
            if name.startswith(prefix):
                _kill_inside(name)
                _ip("netns", "del", name, check=False)
                shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        _remove_bridge(bridge, pref)
