"""Pods on the virtual node reach cluster Services and cluster DNS: a real kube-proxy and CoreDNS.

On the real control plane with CoreDNS as its cluster DNS (``cluster up --cluster-dns``) and the
emulator's real group network (``group_network=True``): ``python:*`` containers run this
machine's python3 and the injected kube-proxy image runs the kube-proxy built from the control
plane's own Kubernetes release, each in its group's network namespace. A client pod fetches
``http://web.<ns>.svc.cluster.local/`` through CoreDNS (reached at its ClusterIP through the
pod's own kube-proxy) and the Service's ClusterIP; scaling the Deployment to 0 breaks that
within seconds, scaling back mends it; a pod that opted out has no proxy and no Service access;
the proxy is never the tenant's (no logs, no exec, not in status) and never changes the size
ECI bills. Needs root, iproute2 and iptables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml

from tests.fixtures.node import NodeFactory, NodeProcess, eventually
from vk_eci.cloud.api.naming import PROXY_CONTAINER
from vk_eci.controlplane import cluster, kube_proxy
from vk_eci.emulator import Emulator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None
                       or shutil.which("iptables") is None,
                       reason="needs root, iproute2 and iptables"),
]

PYTHON = shutil.which("python3") or "/usr/bin/python3"
PROXY_IMAGE = "registry.k8s.io/kube-proxy:*"
BODY = "served-by-vk-eci"
SERVER = ("import http.server as h\n"
          "class H(h.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          f"        b = b'{BODY}'\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(b)))\n"
          "        self.end_headers(); self.wfile.write(b)\n"
          "    def log_message(self, *a): pass\n"
          "h.ThreadingHTTPServer(('', 8080), H).serve_forever()\n")
IDLE = ["python3", "-c", "import time; time.sleep(10**9)"]
PROXY_RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: vk-eci-kube-proxy, namespace: kube-system}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vk-eci-kube-proxy}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-proxier"}
subjects: [{kind: ServiceAccount, name: vk-eci-kube-proxy, namespace: kube-system}]
"""


@pytest_asyncio.fixture
async def emulator_realtime(control_plane: cluster.ControlPlane) -> AsyncIterator[Emulator]:
    """The node fixtures' emulator, here with the real group network and real programs."""
    programs = {"python:*": PYTHON, PROXY_IMAGE: str(kube_proxy.ensure_built())}
    async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                        time_scale=0.01, host=control_plane.host, group_network=True,
                        image_programs=programs) as emu:
        yield emu


@pytest_asyncio.fixture
async def node(control_plane: cluster.ControlPlane, cluster_dns: str,
               node_factory: NodeFactory) -> NodeProcess:
    await kubectl(control_plane, "apply", "-f", "-", stdin=PROXY_RBAC)
    return await node_factory(cluster_ip_mode="kube-proxy", cluster_dns=cluster_dns)


async def kubectl(cp: cluster.ControlPlane, *args: str, stdin: str | None = None,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl off the event loop: the emulator serves on this loop."""
    return await asyncio.to_thread(cp.kubectl, *args, input=stdin, check=check, timeout=60)


def pod(name: str, node: str, command: list[str], *, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "python:3.12", "command": command,
                                     "resources": {"requests": {"cpu": "1",
                                                                "memory": "2Gi"}}}]}}


def manifests(ns: str, node: str) -> str:
    template = pod("web", node, ["python3", "-c", SERVER], labels={"app": "web"})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": ns},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": template["spec"]}}}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": ns},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"port": 80, "targetPort": 8080}]}}
    return yaml.safe_dump_all([deployment, service])


def fetch_script(url: str) -> list[str]:
    return ["python3", "-c",
            f"import urllib.request as u; print(u.urlopen({url!r}, timeout=2).read().decode())"]


async def fetch(cp: cluster.ControlPlane, ns: str, client: str, url: str) -> str | None:
    """The body ``client`` gets from ``url`` (kubectl exec), None when the fetch fails (why is
    printed: a failed assertion shows it)."""
    got = await kubectl(cp, "exec", "-n", ns, client, "-c", "main", "--",
                        *fetch_script(url), check=False)
    if got.returncode != 0:
        print(f"{client} fetching {url}: {got.stderr.strip()[-300:]}")
        return None
    return got.stdout.strip()


async def ready_endpoints(cp: cluster.ControlPlane, ns: str, service: str) -> list[str]:
    """The addresses of the Service's ready endpoints, as its EndpointSlices list them."""
    got = await kubectl(cp, "get", "endpointslice", "-n", ns, "-l",
                        f"kubernetes.io/service-name={service}", "-o",
                        "jsonpath={range .items[*].endpoints[*]}"
                        "{.addresses[0]}={.conditions.ready}{' '}{end}", check=False)
    return [e.split("=")[0] for e in got.stdout.split() if e.endswith("=true")]


async def running(cp: cluster.ControlPlane, ns: str, name: str) -> bool:
    got = await kubectl(cp, "get", "pod", "-n", ns, name, "-o",
                        "jsonpath={.status.phase}", check=False)
    return got.stdout == "Running"


def created(emu: Emulator, pod_name: str) -> dict[str, str]:
    """The CreateContainerGroup request the node sent for ``pod_name``."""
    for request in emu.recorded("CreateContainerGroup"):
        tags = {request.get(f"Tag.{i}.Key"): request.get(f"Tag.{i}.Value")
                for i in range(1, 10)}
        if tags.get("k8s.aliyun.com/pod-name") == pod_name:
            return request
    raise AssertionError(f"no CreateContainerGroup for {pod_name}")


def container_names(request: dict[str, str]) -> list[str]:
    return [v for k, v in sorted(request.items()) if k.startswith("Container.")
            and k.endswith(".Name") and k.count(".") == 2]


async def test_pods_reach_a_service_by_name_through_coredns_and_the_injected_proxy(
        control_plane: cluster.ControlPlane, node: NodeProcess, namespace: str,
        emulator_realtime: Emulator) -> None:
    cp, ns = control_plane, namespace
    await kubectl(cp, "apply", "-f", "-", stdin=manifests(ns, node.name))
    await kubectl(cp, "apply", "-n", ns, "-f", "-",
                  stdin=yaml.safe_dump(pod("client", node.name, IDLE)))
    url = f"http://web.{ns}.svc.cluster.local:80/"
    await eventually(lambda: running(cp, ns, "client"), 90, "client Running", node)

    async def served() -> bool:
        return await fetch(cp, ns, "client", url) == BODY

    await eventually(served, 90, f"{url} served to the client", node, every=1)

    await kubectl(cp, "scale", "-n", ns, "deployment/web", "--replicas=0")
    started = time.monotonic()

    async def refused() -> bool:
        return await fetch(cp, ns, "client", url) is None

    await eventually(refused, 20, "the fetch failing once the Deployment is at 0", node)
    took = time.monotonic() - started
    print(f"\nfetch failed {took:.1f}s after scaling to 0")
    assert took < 15
    await kubectl(cp, "scale", "-n", ns, "deployment/web", "--replicas=2")
    await eventually(served, 90, "the fetch working again after scaling back", node, every=1)

    # Both new replicas serve (they took the addresses the old ones had: the client reaches
    # each at once). Not yet when the first did: the second may turn Ready, its container
    # started, before its server listens (the Deployment has no readiness probe), and the
    # proxy picks either; so the ClusterIP below must serve whichever it picks.
    async def both_serve() -> bool:
        ips = await ready_endpoints(cp, ns, "web")
        return len(ips) == 2 and all([await fetch(cp, ns, "client", f"http://{ip}:8080/")
                                      == BODY for ip in ips])

    await eventually(both_serve, 60, "both replicas serving the client at their addresses",
                     node, every=1)

    # A pod that opted out: no proxy in its group, and the ClusterIP leads nowhere.
    await kubectl(cp, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(pod(
        "island", node.name, IDLE, annotations={"vk-eci.io/cluster-ip": "false"})))
    await eventually(lambda: running(cp, ns, "island"), 90, "island Running", node)
    ip = (await kubectl(cp, "get", "svc", "-n", ns, "web", "-o",
                        "jsonpath={.spec.clusterIP}")).stdout
    for _ in range(3):   # the proxy picks a replica at random: either serves
        assert await fetch(cp, ns, "client", f"http://{ip}/") == BODY
    assert await fetch(cp, ns, "island", f"http://{ip}/") is None

    with_proxy, without = created(emulator_realtime, "client"), created(emulator_realtime,
                                                                        "island")
    assert PROXY_CONTAINER in container_names(with_proxy)
    assert container_names(without) == ["main"]
    # The group's size ECI bills is the pod's own.
    assert (with_proxy.get("Cpu"), with_proxy.get("Memory")) == \
        (without.get("Cpu"), without.get("Memory"))
    # One create per pod (a retried one carries the same ClientToken) and nothing else the
    # proxy adds.
    pods = 2 + 2 + 2  # client, island, web x2 twice
    tokens = {r["ClientToken"] for r in emulator_realtime.recorded("CreateContainerGroup")}
    assert len(tokens) == pods
    assert not emulator_realtime.recorded("UpdateContainerGroup")

    # Never the tenant's: not in the status, no logs or exec, through the API server or at
    # the kubelet API itself.
    names = (await kubectl(cp, "get", "pod", "-n", ns, "client", "-o",
                           "jsonpath={.status.containerStatuses[*].name}")).stdout.split()
    assert names == ["main"]
    logs = await kubectl(cp, "logs", "-n", ns, "client", "-c", PROXY_CONTAINER, check=False)
    assert logs.returncode != 0
    exec_ = await kubectl(cp, "exec", "-n", ns, "client", "-c", PROXY_CONTAINER, "--", "true",
                          check=False)
    assert exec_.returncode != 0
    raw = await kubectl(cp, "get", "--raw", f"/api/v1/nodes/{node.name}/proxy/containerLogs/"
                        f"{ns}/client/{PROXY_CONTAINER}", check=False)
    assert raw.returncode != 0 and "Forbidden" in raw.stderr + raw.stdout, raw.stderr


# Two clocks from the container's start: the Service by ClusterIP (the proxy's first sync)
# and by name (what an application does: its first DNS query may leave before that sync, and
# then waits for the resolver's retry).
REACH = ("import threading, time, urllib.request as u\n"
         "t0 = time.monotonic()\n"
         "def reach(what, url):\n"
         "    while True:\n"
         "        try:\n"
         "            u.urlopen(url, timeout=1).read(); break\n"
         "        except Exception:\n"
         "            time.sleep(0.05)\n"
         "    print('reachable-by', what, round(time.monotonic() - t0, 3), flush=True)\n"
         "for what, url in (('ip', IP_URL), ('name', NAME_URL)):\n"
         "    threading.Thread(target=reach, args=(what, url)).start()\n"
         "time.sleep(10**9)\n")


async def test_time_from_running_to_service_reachable(
        control_plane: cluster.ControlPlane, node: NodeProcess, namespace: str) -> None:
    """p50 over 20 pods of the seconds from the client's start (the pod turns Running as its
    container starts) until the Service answers it: its proxy's first sync, with DNS."""
    cp, ns = control_plane, namespace
    await kubectl(cp, "apply", "-f", "-", stdin=manifests(ns, node.name))
    ip = (await kubectl(cp, "get", "svc", "-n", ns, "web", "-o",
                        "jsonpath={.spec.clusterIP}")).stdout
    script = REACH.replace("IP_URL", repr(f"http://{ip}/")).replace(
        "NAME_URL", repr(f"http://web.{ns}.svc.cluster.local/"))
    figures: dict[str, list[float]] = {"ip": [], "name": []}
    for batch in range(4):  # 5 at a time: two shared cores
        names = [f"c{batch}-{i}" for i in range(5)]
        await kubectl(cp, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump_all(
            [pod(n, node.name, ["python3", "-c", script]) for n in names]))
        for name in names:
            async def measured(name: str = name) -> dict[str, float] | None:
                got = await kubectl(cp, "logs", "-n", ns, name, "-c", "main", check=False)
                found = {line.split()[1]: float(line.split()[2])
                         for line in got.stdout.splitlines()
                         if line.startswith("reachable-by")}
                return found if len(found) == 2 else None

            seconds = await eventually(measured, 120, f"{name} reaching the Service", node,
                                       every=1)
            for what, value in seconds.items():
                figures[what].append(value)
        await kubectl(cp, "delete", "pod", "-n", ns, *names, "--wait=false")
    for what, values in figures.items():
        print(f"\nRunning → Service reachable by {what} over {len(values)} pods: p50 "
              f"{statistics.median(values):.2f}s, max {max(values):.2f}s")
    assert len(figures["ip"]) == len(figures["name"]) == 20
    assert statistics.median(figures["name"]) < 30


async def test_a_missing_proxy_account_is_named_in_an_event(
        control_plane: cluster.ControlPlane, node_factory: NodeFactory, namespace: str) -> None:
    """The proxy's service account absent (here: looked for in the test's own namespace): the
    pod waits, retried, with a Warning naming the account and the way out."""
    cp, ns = control_plane, namespace
    node = await node_factory(cluster_ip_mode="kube-proxy", kube_proxy_namespace=ns)
    await kubectl(cp, "apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(pod("p", node.name,
                                                                             IDLE)))

    async def warned() -> str:
        got = await kubectl(cp, "get", "events", "-n", ns, "--field-selector",
                            "reason=ClusterIPAccountNotFound", "-o",
                            "jsonpath={.items[*].message}", check=False)
        return got.stdout

    message = await eventually(warned, 60, "a ClusterIPAccountNotFound event", node)
    assert f"service account {ns}/vk-eci-kube-proxy" in message
    assert "--cluster-ip-mode none" in message
    assert not await running(cp, ns, "p")
