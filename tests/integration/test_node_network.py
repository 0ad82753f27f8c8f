"""``vk-eci cluster up --node-network``: the node's namespace and veth pair, reachable both
ways, distinct per cluster, and gone without a trace after ``cluster down``."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vk_eci.controlplane import cluster, netns

pytestmark = pytest.mark.integration


def _netns_names() -> set[str]:
    out = subprocess.run([netns.IP, "-j", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


def _link_names() -> set[str]:
    out = subprocess.run([netns.IP, "-j", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {entry["ifname"] for entry in json.loads(out)}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[-1][:1] != "Z"


def _connect_from(net: netns.NodeNetwork, host: str, port: int) -> subprocess.CompletedProcess[str]:
    code = (f"import socket; socket.create_connection(({host!r}, {port}), timeout=3).close(); "
            "print('connected')")
    return subprocess.run([*net.exec_prefix(), sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)


def test_two_node_networks_get_distinct_subnets_and_reach_only_their_host_end(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    net_a = netns.create(a)
    try:
        net_b = netns.create(b)
        try:
            subnets = {ipaddress.ip_network(n.subnet) for n in (net_a, net_b)}
            assert len(subnets) == 2 and all(s.prefixlen == 30 for s in subnets)
            assert all(s.subnet_of(netns.POOL) for s in subnets)  # type: ignore[arg-type]
            assert net_a.netns != net_b.netns and net_a.host_link != net_b.host_link
            # The host end is reachable from inside (a listener on the host end)...
            import socket
            with socket.socket() as server:
                server.bind((net_a.host_ip, 0))
                server.listen()
                assert _connect_from(net_a, net_a.host_ip, server.getsockname()[1]).stdout \
                    == "connected\n"
            # ... and nothing beyond it: no default route leaves the namespace.
            out = _connect_from(net_a, "192.0.2.1", 9)
            assert out.returncode != 0 and "Network is unreachable" in out.stderr
        finally:
            netns.remove(b)
    finally:
        netns.remove(a)
    assert not {net_a.netns, net_b.netns} & _netns_names()
    assert not {net_a.host_link, net_b.host_link} & _link_names()


def test_cluster_down_leaves_no_namespace_link_or_process(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    cp = cluster.up(directory, node_network=True)
    try:
        net = cp.network
        assert net is not None
        assert (directory / "node-netns").read_text().strip() == net.netns
        assert (directory / "node-ip").read_text().strip() == net.node_ip
        assert (directory / "host-ip").read_text().strip() == net.host_ip
        assert cp.server.startswith(f"https://{net.host_ip}:")
        # From inside the namespace, the node's kubeconfig reaches the API server (its
        # serving certificate names the host-end address: kubectl verifies it).
        kubectl = subprocess.run(
            [*net.exec_prefix(), str(cp.bin_dir / "kubectl"), "--kubeconfig",
             str(directory / "node-kubeconfig"), "get", "--raw", "/readyz"],
            capture_output=True, text=True, timeout=60)
        assert kubectl.stdout == "ok", kubectl.stderr
        # Something left running in the namespace, detached from us (as a node would be).
        sleeper = subprocess.Popen([*net.exec_prefix(), "sleep", "600"],
                                   start_new_session=True)
        # (`ip netns exec` enters the namespace right after it starts.)
        deadline = time.monotonic() + 10
        while sleeper.pid not in netns.pids_in(net.netns) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleeper.pid in netns.pids_in(net.netns)
        control = dict(cp.pids)
    except BaseException:
        cluster.down(directory)
        raise
    stopped = cluster.down(directory)
    sleeper.wait(timeout=5)
    assert "node network processes" in stopped and "kube-apiserver" in stopped
    assert net.netns not in _netns_names()
    assert net.host_link not in _link_names()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in control.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [name for name, pid in control.items() if _alive(pid)]
    assert not _alive(sleeper.pid)
    for name in ("state.json", "node-netns", "node-ip", "host-ip", "node-kubeconfig"):
        assert not (directory / name).exists(), name
    # Its address is free again: nothing on the host still holds it.
    out = subprocess.run([netns.IP, "-4", "addr"], capture_output=True, text=True).stdout
    assert f"{net.host_ip}/30" not in out
    # And `down` again is a no-op, not an error.
    assert cluster.down(directory) == []
    assert os.path.isdir(directory)


def test_a_namespace_left_by_a_dead_run_is_collected_and_a_live_one_kept(tmp_path: Path) -> None:
    live, dead = tmp_path / "live", tmp_path / "dead"
    live.mkdir()
    dead.mkdir()
    net_live, net_dead = netns.create(live), netns.create(dead)
    # The live run: its "API server" (a process naming the directory) is recorded and runs;
    # the dead run's recorded pid is gone.
    owner = subprocess.Popen(["sh", "-c", "sleep 600", str(live)], start_new_session=True)
    try:
        (live / "state.json").write_text(json.dumps({"pids": {"kube-apiserver": owner.pid}}))
        (dead / "state.json").write_text(json.dumps({"pids": {"kube-apiserver": 2 ** 22 + 1}}))
        assert netns.collect_stale() == []   # both are young
        later = time.time() + netns.STALE_AFTER_S + 1
        # Something still running inside keeps even an ownerless namespace.
        inside = subprocess.Popen([*net_dead.exec_prefix(), "sleep", "600"],
                                  start_new_session=True)
        deadline = time.monotonic() + 10
        while inside.pid not in netns.pids_in(net_dead.netns) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert netns.collect_stale(now=later) == []
        inside.kill()
        inside.wait()
        assert netns.collect_stale(now=later) == [net_dead.netns]
        assert net_dead.netns not in _netns_names()
        assert net_dead.host_link not in _link_names()
        assert net_live.netns in _netns_names()
    finally:
        owner.kill()
        owner.wait()
        netns.remove(live)
        netns.remove(dead)
    assert not {net_live.netns, net_dead.netns} & _netns_names()
