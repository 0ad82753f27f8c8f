"""The world ``vk-eci demo`` runs: the one the integration tests run, so that what a user types
next (``kubectl logs``, ``exec``, ``top``) works as it does there.

- The node network (``cluster up --node-network``) when the machine allows it (root and
  ``ip netns``): the API server proxies ``nodes/<name>/proxy`` (logs, exec) only to a routable
  node address, never to 127.0.0.1, and metrics-server's APIService needs one too. Without it
  the demo still runs, on loopback, and says in one line what will not work and why.
- The node trusts the cluster CA (``--client-ca-file``): the API server calls the kubelet API
  with its client certificate, which a node without the CA refuses (``kubectl logs`` →
  "You must be logged in to the server").
- metrics-server, for ``kubectl top``.
- Cluster DNS when the cluster runs it: the node reads ``DIR/cluster-dns-ip`` (written by
  ``vk-eci cluster up --cluster-dns``); :func:`start_cluster_dns` is where the demo starts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from vk_eci import config
from vk_eci.controlplane import cluster

NODE = "virtual-kubelet"
# Inside the node network's namespace only the demo's node listens: fixed, familiar ports.
NETNS_KUBELET_PORT, NETNS_METRICS_PORT = 10250, 9100


def node_network_unavailable() -> str | None:
    """Why the node network cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "not running as root"
    ip = shutil.which("ip")
    if ip is None:
        return "no `ip` command (install iproute2)"
    probe = subprocess.run([ip, "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip() or probe.returncode}"
    return None


BUILDING_DNS = "CoreDNS is not built yet"


def start_cluster_dns(cp: cluster.ControlPlane) -> str | None:
    """Cluster DNS for the demo (CoreDNS behind the ``kube-dns`` Service, as ``vk-eci cluster up
    --cluster-dns`` runs it): started now and None, or why not now. It needs the node network.
    Without its binary (a first run: CoreDNS takes minutes to compile) the answer is
    :data:`BUILDING_DNS`, and ``DIR/cluster-dns-ip`` is written at once with the Service's fixed
    IP: the node gets it as ``--cluster-dns`` from the start (no ``MissingClusterDNS`` Warning)
    and names resolve once :func:`vk_eci.controlplane.cluster_dns.start`, run in the background,
    has built and started CoreDNS, as in a cluster whose DNS is still starting."""
    from vk_eci.controlplane import cluster_dns

    if cp.network is None:
        return "no node network"
    if not cluster_dns.is_built():
        (cp.dir / cluster_dns.IP_FILE).write_text(cluster_dns.CLUSTER_DNS_IP + "\n")
        return BUILDING_DNS
    cluster_dns.start(cp)
    return None


def cluster_dns_flag(directory: Path) -> list[str]:
    dns = directory / "cluster-dns-ip"
    return ["--cluster-dns", dns.read_text().strip()] if dns.exists() else []


def node_argv(cp: cluster.ControlPlane, eci_endpoint: str, *, metrics_port: int,
              kubelet_port: int) -> list[str]:
    """``vk-eci run`` as the demo starts it: in the node network when there is one."""
    net = cp.network
    host = net.node_ip if net else "127.0.0.1"
    argv = [*(net.exec_prefix() if net else []), sys.executable, "-m", "vk_eci", "run",
            "--kubeconfig", str(cp.node_kubeconfig), "--node-name", NODE,
            "--region", "cn-hangzhou", "--zone", "cn-hangzhou-h", "--vswitch", "vsw-demo",
            "--security-group", "sg-demo", "--cluster-name", "demo",
            "--eci-endpoint", eci_endpoint, "--eci-protocol", "http",
            "--metrics-addr", f"{host}:{metrics_port}",
            "--kubelet-address", host, "--kubelet-port", str(kubelet_port),
            "--client-ca-file", str(cp.dir / "pki" / "ca.crt"), *cluster_dns_flag(cp.dir),
            # The demo's groups have no network of their own (the emulator without
            # --group-network): no kube-proxy is injected into them.
            "--cluster-ip-mode", "none"]
    if not config.is_loopback(eci_endpoint.rsplit(":", 1)[0]):
        # The emulator on the host end of the node network: this machine, but not loopback,
        # so plain http must be asked for.
        argv.append("--insecure-eci-endpoint")
    return argv


def metrics_address(cp: cluster.ControlPlane, port: int) -> str:
    """Where the node's /metrics answers, from the host."""
    return f"{cp.network.node_ip if cp.network else '127.0.0.1'}:{port}"
