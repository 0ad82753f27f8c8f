"""The node's own network: a network namespace with a veth pair on a private /30.

The API server refuses to proxy ``nodes/<name>/proxy`` to a loopback address, and endpoint
objects may not point at 127.0.0.0/8, so a node on 127.0.0.1 cannot be reached the way a real
cluster reaches its kubelets. ``create`` gives the node a routable address of its own: a network
namespace named after the cluster's state directory, a veth pair whose host end carries the
first address of a free /30 in ``10.250.0.0/16`` (the API server, the emulator and
metrics-server listen there) and whose namespace end carries the second (the node binds and
advertises it). The namespace has no default route and the host does not forward: nothing in
it can reach beyond the host end of the pair. ``remove`` kills whatever still runs in the
namespace, deletes the link and the namespace, and leaves nothing behind.

Several test clusters run on one machine at a time: the /30 is chosen under an exclusive lock
among the subnets no address or route on the host uses yet. This is synchronous code run by
``vk-eci cluster up/down`` and by pytest fixtures, never on an event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vk_eci import hostnet
from vk_eci.log import controlplane_logger as log

IP = "/usr/sbin/ip"
POOL = ipaddress.IPv4Network("10.250.0.0/16")
LOCK = Path("/run/lock/vk-eci-node-network.lock")
# Who owns each namespace, so that one left behind by a run that was killed (its control plane
# gone, nothing running inside) is removed by the next `create` on this machine.
REGISTRY = Path("/run/vk-eci/netns")
STALE_AFTER_S = 600.0


class NetworkError(RuntimeError):
    """The node network could not be made or removed; the message says which step and why."""


@dataclass(frozen=True)
class NodeNetwork:
    """A namespace and the veth pair joining it to the host, as recorded in the state dir."""

    netns: str
    host_link: str
    node_link: str
    host_ip: str
    node_ip: str

    @property
    def subnet(self) -> str:
        return str(ipaddress.ip_network(f"{self.host_ip}/30", strict=False))

    def exec_prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return [IP, "netns", "exec", self.netns]


def names_for(directory: Path) -> tuple[str, str, str]:
    """Namespace and link names owned by ``directory`` (link names are at most 15 bytes)."""
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:8]
    return f"vkeci-{digest}", f"vke{digest}h", f"vke{digest}n"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return hostnet.ip(*args, check=check, error=NetworkError)


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 address and route on the host (and in every namespace, whose /30s are
    visible on the host only as their host ends' addresses, which we do see)."""
    return hostnet.used_networks()


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    for subnet in POOL.subnets(new_prefix=30):
        if not any(subnet.overlaps(u) for u in used):
            return subnet
    raise NetworkError(f"no free /30 left in {POOL} (stale namespaces? see `ip netns list`)")


def _locked() -> contextlib.AbstractContextManager[None]:
    return hostnet.locked(LOCK)


def _netns_exists(name: str) -> bool:
    return any(line.split()[0] == name
               for line in _ip("netns", "list").stdout.splitlines() if line.strip())


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def create(directory: Path) -> NodeNetwork:
    """Make the namespace and the veth pair owned by ``directory`` (replacing a stale one)."""
    netns, host_link, node_link = names_for(directory)
    remove(directory, quiet=True)
    with _locked():
        stale = collect_stale()
        if stale:
            log.info("removed node networks left by runs that are gone",
                     extra={"netns": stale})
        subnet = _free_subnet()
        host_ip, node_ip = (str(a) for a in list(subnet.hosts())[:2])
        net = NodeNetwork(netns=netns, host_link=host_link, node_link=node_link,
                          host_ip=host_ip, node_ip=node_ip)
        try:
            _ip("netns", "add", netns)
            _ip("link", "add", host_link, "type", "veth", "peer", "name", node_link,
                "netns", netns)
            _ip("addr", "add", f"{host_ip}/30", "dev", host_link)
            _ip("link", "set", host_link, "up")
            _ip("-n", netns, "addr", "add", f"{node_ip}/30", "dev", node_link)
            _ip("-n", netns, "link", "set", node_link, "up")
            # The node's own loopback (its metrics or debug listeners may use it).
            _ip("-n", netns, "link", "set", "lo", "up")
            REGISTRY.mkdir(parents=True, exist_ok=True)
            (REGISTRY / f"{netns}.json").write_text(json.dumps(
                {"dir": str(directory.resolve()), "created": time.time()}))
        except NetworkError:
            _teardown(net)
            raise
    _wait_reachable(net)
    log.info("node network up", extra={"netns": netns, "subnet": net.subnet})
    return net


def _wait_reachable(net: NodeNetwork, timeout: float = 5.0) -> None:
    """A fresh veth pair takes a moment (DAD, carrier) before it passes traffic."""
    deadline = time.monotonic() + timeout
    while True:
        up = _ip("-n", net.netns, "-j", "link", "show", "dev", net.node_link).stdout
        host = _ip("-j", "link", "show", "dev", net.host_link).stdout
        if '"LOWER_UP"' in up and '"LOWER_UP"' in host:
            return
        if time.monotonic() > deadline:
            raise NetworkError(f"veth {net.host_link}/{net.node_link} has no carrier after "
                               f"{timeout}s")
        time.sleep(0.05)


def pids_in(netns: str) -> list[int]:
    """The processes running inside the namespace ``netns`` (none if it does not exist)."""
    result = _ip("netns", "pids", netns, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()] if result.returncode == 0 else []


def _kill_all(netns: str, grace: float) -> list[int]:
    pids = pids_in(netns)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids_in(netns) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids_in(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while pids_in(netns) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        # Children of this very process (fixtures) must be reaped or they linger as zombies.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    return pids


def _teardown(net: NodeNetwork, grace: float = 10.0) -> list[int]:
    killed = _kill_all(net.netns, grace) if _netns_exists(net.netns) else []
    if _link_exists(net.host_link):
        _ip("link", "del", net.host_link)
    if _netns_exists(net.netns):
        _ip("netns", "del", net.netns)
    (REGISTRY / f"{net.netns}.json").unlink(missing_ok=True)
    return killed


def _owner_alive(directory: Path) -> bool:
    """Whether a process recorded in the owner's ``state.json`` still runs (one of ours: its
    command line names the directory, so a reused pid does not count)."""
    try:
        pids = json.loads((directory / "state.json").read_text()).get("pids", {})
    except (OSError, ValueError):
        return False
    for pid in pids.values():
        try:
            cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if str(directory) in cmdline:
            return True
    return False


def collect_stale(now: float | None = None) -> list[str]:
    """Remove the namespaces whose owner is gone: registered over ``STALE_AFTER_S`` ago,
    nothing running inside, no process of the owner's control plane alive. Returns their
    names. (A namespace of a live run always has its API server alive.)"""
    removed: list[str] = []
    records = sorted(REGISTRY.glob("vkeci-*.json")) if REGISTRY.is_dir() else []
    for record in records:
        try:
            data = json.loads(record.read_text())
            owner, created = Path(str(data["dir"])), float(data["created"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        name = record.name.removesuffix(".json")
        if not _netns_exists(name):
            record.unlink(missing_ok=True)
            continue
        netns, host_link, node_link = names_for(owner)
        if netns != name or (now or time.time()) - created < STALE_AFTER_S:
            continue
        if pids_in(name) or _owner_alive(owner):
            continue
        try:
            _teardown(NodeNetwork(netns=netns, host_link=host_link, node_link=node_link,
                                  host_ip="", node_ip=""))
        except NetworkError as e:   # someone else's cleanup got there first, or ip failed
            log.warning("could not remove a stale node network",
                        extra={"netns": name, "error": str(e)})
            continue
        removed.append(name)
    return removed


def stop_processes(directory: Path, grace: float = 10.0) -> list[int]:
    """Stop every process in ``directory``'s namespace (TERM, then KILL after ``grace``),
    leaving the network itself; returns their pids."""
    netns = names_for(directory)[0]
    return _kill_all(netns, grace) if _netns_exists(netns) else []


def remove(directory: Path, *, quiet: bool = False, grace: float = 10.0) -> list[int]:
    """Stop every process in ``directory``'s namespace, delete its link and the namespace.

    Works from the names alone (they derive from the directory), so a cluster whose state
    file is gone is still cleaned up. Returns the pids it stopped.
    """
    netns, host_link, node_link = names_for(directory)
    net = NodeNetwork(netns=netns, host_link=host_link, node_link=node_link, host_ip="",
                      node_ip="")
    killed = _teardown(net, grace)
    if killed and not quiet:
        log.info("stopped processes in the node network", extra={"netns": netns,
                                                                  "pids": killed})
    for name in ("node-netns", "node-ip", "host-ip", "node-kubeconfig"):
        (directory / name).unlink(missing_ok=True)
    return killed


def write_files(directory: Path, net: NodeNetwork) -> None:
    """``DIR/node-netns``, ``DIR/node-ip`` and ``DIR/host-ip``, for scripts to read."""
    (directory / "node-netns").write_text(net.netns + "\n")
    (directory / "node-ip").write_text(net.node_ip + "\n")
    (directory / "host-ip").write_text(net.host_ip + "\n")


def to_dict(net: NodeNetwork) -> dict[str, str]:
    return asdict(net)
