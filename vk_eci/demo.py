"""``vk-eci demo``: the whole product on one machine, with no cloud account.

It starts a real local control plane, the offline ECI (emulator) and the virtual node, installs
the ImageCache CRD, builds an image cache of the Flink images and starts the same Deployment once
without and once with the cache, printing how long each took from ``kubectl apply`` to the pod
Running on the API server. Then it keeps everything running (Ctrl-C stops it all) so the user
can explore with kubectl and /metrics: it runs the world the integration tests run (node network,
the node trusting the cluster CA, metrics-server; :mod:`vk_eci.demo_world`), so that the next
steps it prints last — ``kubectl logs``, ``exec``, ``top``, ``get imagecaches`` — work.

Each start is printed twice. In wall time, as it happened here: the emulator runs ECI's
modelled durations ``--time-scale`` times as long (0.1: ten times faster), while the node and
Kubernetes take their real time. In ECI time, as it would take against real ECI: ECI's own part
(the group's create to Running, from the emulator's exact times) scaled back to ECI's pace,
plus what the node and Kubernetes added, measured (they run at their own pace in either case).

This module composes products (the emulator and the node), so it is one of the two places, with
``cli``, allowed to import the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vk_eci import demo_prometheus as prom
from vk_eci import demo_world as world
from vk_eci.cloud.api import naming
from vk_eci.controlplane import cluster

CRD = Path(__file__).resolve().parents[1] / "charts" / "vk-eci" / "crds" / \
    "imagecaches.eci.alibabacloud.com.yaml"
DEMO_AK, DEMO_SK = "demo-access-key-id", "demo-access-key-secret"
PROMETHEUS_INTERVAL = "2s"   # scrapes and rule evaluations: numbers within seconds
FLINK = ["flink:1.17"]  # 386.26 MB: ECI documents 50 s to pull it, 5 s from a cache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(text: str) -> None:
    print(text, flush=True)


def _deployment(name: str, annotations: dict[str, str]) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "nodeName": world.NODE,
                    # A line to read with `kubectl logs`, then a long-running process.
                    "containers": [{"name": f"c{i}", "image": image,
                                    "command": ["sh", "-c", f"echo {name} started; sleep 3600"],
                                    "imagePullPolicy": "IfNotPresent"}
                                   for i, image in enumerate(FLINK)],
                },
            },
        },
    })


async def _kubectl(cp: cluster.ControlPlane, *args: str, input: str | None = None,
                   limit: float = 60) -> str:
    # kubectl is a subprocess: run it off the event loop so the emulator keeps serving.
    result = await asyncio.to_thread(cp.kubectl, *args, input=input, timeout=limit)
    return result.stdout


async def _wait_exists(cp: cluster.ControlPlane, what: str, limit: float) -> None:
    # `kubectl wait` fails at once on an object that does not exist yet.
    async with asyncio.timeout(limit):
        while True:
            if (await asyncio.to_thread(cp.kubectl, "get", what, check=False)).returncode == 0:
                return
            await asyncio.sleep(0.5)


async def _wait_running(core: Any, app: str, limit: float) -> float:
    """Monotonic time at which every pod of ``app`` is Running on the API server."""
    try:
        async with asyncio.timeout(limit):
            while True:
                pods = (await core.list_namespaced_pod("default",
                                                       label_selector=f"app={app}")).items
                if pods and all(p.status and p.status.phase == "Running" for p in pods):
                    return time.monotonic()
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"deployment {app} did not reach Running within {limit:.0f}s") from None


@dataclass(frozen=True)
class Start:
    """One start: wall seconds from ``kubectl apply`` to Running, and ECI's part of them."""

    wall: float
    eci: float   # wall seconds from the group's create to its Running, in the emulator

    def eci_time(self, time_scale: float) -> float:
        """The start as against real ECI: ECI's part at its pace, the rest as measured."""
        return self.overhead + self.eci / time_scale

    @property
    def overhead(self) -> float:
        return max(0.0, self.wall - self.eci)


async def _start(cp: cluster.ControlPlane, core: Any, emu: Any, app: str,
                 annotations: dict[str, str]) -> Start:
    began = time.monotonic()
    await _kubectl(cp, "apply", "-f", "-", input=_deployment(app, annotations))
    running = await _wait_running(core, app, 600)
    groups = [g for g in emu.state.groups.values()
              if dict(g.tags).get(naming.TAG_POD_NAME, "").startswith(f"{app}-")
              and g.running_at is not None]
    eci = max((g.running_at - g.created for g in groups), default=0.0)
    return Start(wall=running - began, eci=eci)


async def _kube_api(cp: cluster.ControlPlane) -> Any:
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cp.kubeconfig),
                                  client_configuration=configuration)
    return client.ApiClient(configuration)


async def _wait_top(cp: cluster.ControlPlane, limit: float) -> bool:
    """Until ``kubectl top pod`` answers (metrics-server's first scrapes of the node)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(cp.kubectl, "top", "pod", check=False)).returncode == 0:
            return True
        await asyncio.sleep(2)
    return False


def _next_steps(cp: cluster.ControlPlane, metrics: str, prometheus: str | None) -> str:
    return (f"\nEverything keeps running until Ctrl-C. Try:\n"
            f"  export KUBECONFIG={cp.kubeconfig} PATH={cp.bin_dir}:$PATH\n"
            f"  curl -s http://{metrics}/metrics | grep vk_eci_\n"
            + (f"  open {prometheus}/graph (Prometheus with the chart's rules and alerts)\n"
               if prometheus else "")
            + f"  less {cp.dir / 'logs' / 'vk-eci.log'}\n"
            "  kubectl get pods -o wide\n"
            "  kubectl logs deploy/flink-cached\n"
            "  kubectl exec deploy/flink-cached -- ls /\n"
            "  kubectl top pod\n"
            "  kubectl get imagecaches")


async def _start_prometheus(cp: cluster.ControlPlane, metrics: str) -> str | None:
    """Prometheus scraping the node (chart rules), once it holds the node's first scrape: the
    dashboard's counters then start at 0 there, so the first pods count."""
    why_not = prom.unavailable()
    if why_not:
        _say(f"No Prometheus ({why_not}): the hit rate is not shown.")
        return None
    try:
        url = await asyncio.to_thread(prom.start, cp, [metrics], interval=PROMETHEUS_INTERVAL)
    except RuntimeError as e:   # the walkthrough does not need it: say why, go on without
        _say(f"No Prometheus ({e}): the hit rate is not shown.")
        return None
    await prom.wait_for(url, "vk_eci_image_cache_results_total", 60)
    _say(f"Prometheus: {url} (scraping the node every {PROMETHEUS_INTERVAL})")
    return url


async def _demo(cp: cluster.ControlPlane, args: argparse.Namespace, *,
                dns_later: bool = False) -> int:
    from vk_eci.controlplane import cluster_dns, metrics_server
    from vk_eci.emulator import Emulator

    net = cp.network
    metrics_port = world.NETNS_METRICS_PORT if net else _free_port()
    kubelet_port = world.NETNS_KUBELET_PORT if net else _free_port()
    metrics = world.metrics_address(cp, metrics_port)
    async with Emulator(access_key_id=DEMO_AK, access_key_secret=DEMO_SK,
                        region="cn-hangzhou", time_scale=args.time_scale, host=cp.host) as emu:
        _say(f"ECI emulator: http://{emu.endpoint} (time scale {args.time_scale})")
        env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=DEMO_AK,
                   ALIBABA_CLOUD_ACCESS_KEY_SECRET=DEMO_SK)
        # Opening a local log file is quick; it lives as long as the node process.
        node_log = open(cp.dir / "logs" / "vk-eci.log", "wb")  # noqa: SIM115, ASYNC230
        node = await asyncio.create_subprocess_exec(
            *world.node_argv(cp, emu.endpoint, metrics_port=metrics_port,
                             kubelet_port=kubelet_port),
            env=env, stdout=node_log, stderr=subprocess.STDOUT)
        # metrics-server (for `kubectl top`) starts meanwhile: it needs the node network.
        if net and not metrics_server.is_built():
            # Its build's progress lines would otherwise come unannounced among the results.
            _say("Building metrics-server (for `kubectl top`) meanwhile: once per machine, "
                 "a few minutes")
        top = asyncio.create_task(asyncio.to_thread(metrics_server.start, cp)) if net else None
        # CoreDNS, on a first run, likewise (its Service IP is already the node's cluster DNS).
        dns = asyncio.create_task(asyncio.to_thread(cluster_dns.start, cp)) if dns_later else None
        try:
            await _kubectl(cp, "apply", "-f", str(CRD))
            await _kubectl(cp, "wait", "--for=condition=Established", "--timeout=60s",
                           "crd/imagecaches.eci.alibabacloud.com")
            await _wait_exists(cp, f"node/{world.NODE}", 120)
            await _kubectl(cp, "wait", "--for=condition=Ready", "--timeout=120s",
                           f"node/{world.NODE}")
            _say(f"virtual node `{world.NODE}` is Ready")
            prometheus = await _start_prometheus(cp, metrics)

            from kubernetes_asyncio import client

            api = await _kube_api(cp)
            core = client.CoreV1Api(api)
            scale = args.time_scale
            cold = await _start(cp, core, emu, "flink-nocache", {})
            _say(f"flink without an image cache: Running after {cold.eci_time(scale):.1f}s "
                 f"in ECI time ({cold.wall:.1f}s wall at time scale {scale:g})")

            cache = {"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                     "metadata": {"name": "flink"}, "spec": {"images": FLINK}}
            await _kubectl(cp, "apply", "-f", "-", input=json.dumps(cache))
            await _kubectl(cp, "wait", "--for=jsonpath={.status.phase}=Ready",
                           "--timeout=600s", "imagecache/flink", limit=610)
            _say("image cache `flink` is Ready:\n" + await _kubectl(cp, "get", "imagecache"))

            warm = await _start(cp, core, emu, "flink-cached",
                                {"k8s.aliyun.com/eci-image-cache": "true"})
            await api.close()
            ratio = cold.eci_time(scale) / max(warm.eci_time(scale), 1e-6)
            _say(f"flink from the image cache: Running after {warm.eci_time(scale):.1f}s "
                 f"in ECI time ({warm.wall:.1f}s wall) ({ratio:.1f}x faster; "
                 f"{cold.wall / max(warm.wall, 1e-6):.1f}x in wall time). Both starts are "
                 "the emulator's model of ECI's pulls (docs/EMULATOR.md), not a measurement "
                 "of ECI; what the node adds is measured:")
            _say(f"  ECI's own start: {cold.eci / scale:.1f}s and {warm.eci / scale:.1f}s "
                 f"at ECI's pace; the node and Kubernetes added {cold.overhead:.1f}s and "
                 f"{warm.overhead:.1f}s (kubectl apply -> group created, ECI Running -> "
                 "Running on the API server)")
            # The hit rate first: on a first run metrics-server may still be building. Both
            # starts' times, not only the first's: the cached one may not be scraped yet.
            if prometheus:
                _say("From Prometheus, with the dashboard's queries:\n"
                     + await prom.summary(prometheus, results=("hit", "none")))
            if top is not None:
                if not top.done():
                    _say("Waiting for metrics-server (for `kubectl top`)...")
                await top
                if not await _wait_top(cp, 90):
                    _say("metrics-server has no pod metrics yet: `kubectl top pod` may need "
                         "a few more seconds")
            if dns is not None:
                if not dns.done():
                    _say("Waiting for cluster DNS (CoreDNS is building)...")
                try:
                    _say(f"Cluster DNS (CoreDNS) answers at {await dns}")
                except RuntimeError as e:  # BuildError, ClusterError
                    _say(f"No cluster DNS: {e}")
            _say(_next_steps(cp, metrics, prometheus))
            if args.once:
                return 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            return 0
        finally:
            for task in (top, dns):
                if task is not None and not task.done():
                    with contextlib.suppress(BaseException):
                        await task
            if node.returncode is None:
                node.terminate()
                try:
                    await asyncio.wait_for(node.wait(), 20)
                except TimeoutError:
                    node.kill()
                    await node.wait()
            node_log.close()


def main(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    why_not = world.node_network_unavailable()
    if why_not:
        _say(f"No node network ({why_not}): the node listens on 127.0.0.1, where the API "
             "server will not proxy to it, so `kubectl logs`, `exec` and `top` will not work "
             "(run the demo as root on Linux for them).")
    _say("Starting a local Kubernetes control plane (the first run builds it from source)...")
    try:
        cp = cluster.up(directory, node_network=why_not is None)
        no_dns = world.start_cluster_dns(cp)
    except RuntimeError as e:   # ClusterError, BuildError, NetworkError
        print(f"vk-eci demo: {e}", file=sys.stderr)
        return 1
    _say(f"Kubernetes {cp.version} at {cp.server}")
    later = no_dns == world.BUILDING_DNS
    if later:
        _say(f"Cluster DNS (CoreDNS) at {(cp.dir / 'cluster-dns-ip').read_text().strip()}: "
             "building CoreDNS meanwhile (once per machine, several minutes); names resolve "
             "once it runs")
    else:
        _say(f"No cluster DNS ({no_dns}): pods show a MissingClusterDNS Warning." if no_dns
             else f"Cluster DNS (CoreDNS) at {(cp.dir / 'cluster-dns-ip').read_text().strip()}")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_demo(cp, args, dns_later=later))
        return 0
    except (TimeoutError, RuntimeError) as e:   # ClusterError, BuildError among them
        print(f"vk-eci demo: {e or 'timed out'}; see the logs in {directory / 'logs'}",
              file=sys.stderr)
        return 1
    finally:
        cluster.down(directory)
        _say("stopped the node, the emulator and the control plane")
