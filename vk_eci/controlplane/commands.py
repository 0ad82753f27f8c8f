"""``vk-eci cluster up|down|status|build``: the commands that compose the control plane and its
add-ons (metrics-server, the older kube-apiserver). Only ``vk_eci.cli`` imports this module;
it may import every other ``controlplane`` module.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from vk_eci.controlplane import (
    build,
    cluster_dns,
    kube_proxy,
    legacy,
    metrics_server,
    netns,
    runningpods_client,
)
from vk_eci.controlplane.cluster import down, up
from vk_eci.controlplane.state import ClusterError, ControlPlane


def cli_up(directory: Path, k8s_version: str | None = None, node_network: bool = False,
           with_metrics_server: bool = False, with_cluster_dns: bool = False) -> int:
    if with_metrics_server and not node_network:
        print("vk-eci cluster up: --metrics-server needs --node-network (an APIService cannot "
              "route to a loopback address)", file=sys.stderr)
        return 2
    if with_cluster_dns and not node_network:
        print("vk-eci cluster up: --cluster-dns needs --node-network (a Service's endpoint "
              "cannot be a loopback address)", file=sys.stderr)
        return 2
    try:
        started = time.monotonic()
        cp = up(directory, node_network=node_network)
        try:
            if with_metrics_server:
                metrics_server.start(cp)
            if with_cluster_dns:
                dns_ip = cluster_dns.start(cp)
        except BaseException:
            down(directory)
            raise
    except (ClusterError, build.BuildError, netns.NetworkError) as e:
        print(f"vk-eci cluster up: {e}", file=sys.stderr)
        return 1
    print(f"Kubernetes {cp.version} is up in {time.monotonic() - started:.1f}s at {cp.server}\n"
          f"  export KUBECONFIG={cp.kubeconfig}\n"
          f"  {cp.bin_dir / 'kubectl'} --kubeconfig {cp.kubeconfig} get ns")
    if cp.network:
        net = cp.network
        print(f"Node network: namespace {net.netns}, node {net.node_ip}, host {net.host_ip} "
              f"({net.subnet})\n"
              f"  vk-eci emulator --host {net.host_ip} ...\n"
              f"  ip netns exec {net.netns} vk-eci run --kubeconfig {cp.node_kubeconfig} "
              f"--kubelet-address {net.node_ip} --eci-endpoint {net.host_ip}:PORT "
              "--eci-protocol http --insecure-eci-endpoint ...")
    if with_cluster_dns:
        print(f"Cluster DNS: kube-system/kube-dns at {dns_ip} (CoreDNS on {cp.host})\n"
              f"  vk-eci run ... --cluster-dns $(cat {cp.dir / cluster_dns.IP_FILE})")
    print(f"Stop it with: vk-eci cluster down --dir {cp.dir}")
    return 0


def cli_down(directory: Path) -> int:
    stopped = down(directory)
    print(f"stopped: {', '.join(stopped)}" if stopped else f"no cluster running in {directory}")
    return 0


def cli_status(directory: Path) -> int:
    cp = ControlPlane.load(directory.resolve())
    running = cp.running_pids() if cp else {}
    if not cp or not running:
        print(f"no cluster running in {directory}")
        return 1
    print(f"Kubernetes {cp.version} at {cp.server}, kubeconfig {cp.kubeconfig}")
    if cp.network:
        print(f"  node network: namespace {cp.network.netns}, node {cp.network.node_ip}, "
              f"host {cp.network.host_ip}")
    for name, pid in running.items():
        print(f"  {name}: pid {pid}")
    return 0


def cli_build() -> int:
    try:
        tools = build.ensure_built()
        print(f"control plane {tools.version} binaries in {tools.bin_dir}", flush=True)
        started = time.monotonic()
        path = metrics_server.ensure_built()
        older = legacy.ensure_built()
        proxy = kube_proxy.ensure_built()
        dns = cluster_dns.ensure_built()
        client = runningpods_client.ensure_built()
    except build.BuildError as e:
        print(f"vk-eci cluster build: {e}", file=sys.stderr)
        return 1
    print(f"metrics-server {metrics_server.version()} in {path} "
          f"({time.monotonic() - started:.0f}s)")
    print(f"kube-apiserver {legacy.version()} (SPDY exec tests) in {older}")
    print(f"kube-proxy {kube_proxy.version()} (the injected proxy, for the emulator) in {proxy}")
    print(f"CoreDNS {cluster_dns.version()} (cluster up --cluster-dns) in {dns}")
    print(f"client-go {runningpods_client.version()} kubelet API client (tests) in {client}")
    return 0
