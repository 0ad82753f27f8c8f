"""vk-eci side by side with the Go virtual-kubelet (mock provider) on the same control plane.

The Go node is ``github.com/virtual-kubelet/virtual-kubelet`` v1.14.1, ``cmd/virtual-kubelet``
with its mock provider (pods Running at once, no cloud), built from the Go module pinned in
``hack/virtual-kubelet`` into ``~/.cache/vk-eci/peers``. vk-eci runs against the ECI emulator
(its own process, time scale 0.0001: a modelled 50 s pull takes 5 ms) twice: with ECI's
documented rate limits (and the node's client budgets at 0.9 of them), and with both off.
One after the other, on one control plane, each node on its own namespace, the same N pods
(one container, created 50 at a time):

- create → Running: throughput (N / span from the first create to the last Running seen) and
  per-pod latency p50/p99 (create call returned → Running seen by a watch);
- API-server requests per pod: ``apiserver_request_total`` from the API server's own
  /metrics, before and after (all clients; the benchmark's own creates and watch are the same
  for every node);
- node CPU seconds and peak RSS per 1,000 pods (from /proc of the node process).

CPU and API requests are read once the node is idle again after the last Running (at most
15 s later), so work that trails the start (vk-eci's copies of ECI's events) is counted.

Ratios are vk-eci / Go VK. Bounded: ``--sizes`` (default 200 1000 3000, ``--quick`` 200),
every wait has a deadline. Usage: ``python benchmarks/bench_vs_virtual_kubelet.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from procstat import proc_stat
from report import Report

from tests.fixtures.node import free_port, node_command, node_env
from vk_eci.controlplane import build, cluster

VK_VERSION = "v1.14.1"
PEERS = build.cache_root().parent / "peers"


def go_virtual_kubelet() -> Path:
    """The Go node's binary, built once per machine (rebuilt when hack/virtual-kubelet's pins
    change), by the same mechanism as metrics-server and the older API server."""
    return build.ensure_single("virtual-kubelet",
                               "github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet",
                               PEERS / VK_VERSION / "virtual-kubelet", VK_VERSION, "1")


def api_requests(cp: cluster.ControlPlane) -> Counter[str]:
    """``apiserver_request_total`` by verb, resource and subresource."""
    out = cp.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    counts: Counter[str] = Counter()
    for line in out.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            kind = " ".join(x for x in (labels.get("verb", ""), labels.get("resource", ""),
                                        labels.get("subresource", "")) if x)
            counts[kind] += float(line.rsplit(" ", 1)[1])
    return counts


@dataclass
class Run:
    node: str
    n: int
    throughput: float
    p50: float
    p99: float
    requests_per_pod: float
    top_requests: str
    cpu_per_1000: float
    rss_mib: float


class NodeExited(Exception):
    """The node under test died during a run."""


def exit_reason(proc: subprocess.Popen[bytes], log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    fatal = [x for x in lines if x.startswith(("fatal error", "panic:", "Traceback"))]
    return f"exited {proc.returncode}: {(fatal or lines[-1:] or [''])[0].strip()}"


async def measure(cp: cluster.ControlPlane, api: client.ApiClient, node: str,
                  proc: subprocess.Popen[bytes], log: Path, n: int, within: float) -> Run:
    pid = proc.pid
    core = client.CoreV1Api(api)
    ns = f"vs-{uuid.uuid4().hex[:6]}"
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    # The namespace's default service account must exist before pods are admitted.
    for _ in range(100):
        with contextlib.suppress(Exception):
            await core.read_namespaced_service_account("default", ns)
            break
        await asyncio.sleep(0.1)
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = asyncio.Event()

    def seen(pod: Any) -> None:
        if pod.status and pod.status.phase == "Running" and pod.metadata.name not in running:
            running[pod.metadata.name] = time.monotonic()
            if len(running) == n:
                done.set()

    async def watcher() -> None:
        # List, then watch from the listing; a watch that ends or fails (it did, and the run
        # then waited out its deadline with every pod Running) lists again.
        while not done.is_set():
            try:
                listing = await core.list_namespaced_pod(ns)
                for pod in listing.items:
                    seen(pod)
                w = watch.Watch()
                async for ev in w.stream(core.list_namespaced_pod, ns, timeout_seconds=60,
                                         resource_version=listing.metadata.resource_version):
                    seen(ev["object"])
                    if done.is_set():
                        return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                print(f"# bench watch failed ({type(e).__name__}: {e}); listing again",
                      file=sys.stderr)
                await asyncio.sleep(0.2)

    requests0 = await asyncio.to_thread(api_requests, cp)
    cpu0 = proc_stat(pid).cpu_seconds
    watching = asyncio.create_task(watcher())
    await asyncio.sleep(0.5)
    sem = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        body: Any = {"metadata": {"name": f"p{i}"}, "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "c", "image": "busybox:1.36",
                            "command": ["sleep", "infinity"]}]}}
        async with sem:
            await core.create_namespaced_pod(ns, body)
            created[f"p{i}"] = time.monotonic()

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    try:
        deadline = time.monotonic() + within
        while not done.is_set():
            failure: Exception | None = None
            if proc.poll() is not None:
                failure = NodeExited(f"{node} {exit_reason(proc, log)}")
            elif time.monotonic() > deadline:
                failure = TimeoutError(f"{node}: {len(running)} of {n} pods Running after "
                                       f"{within:.0f} s")
            if failure is not None:
                with contextlib.suppress(Exception):
                    await core.delete_namespace(ns)
                raise failure
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    span = max(running.values()) - t0
    await settle(pid)
    stat = proc_stat(pid)
    cpu1, rss = stat.cpu_seconds, stat.peak_rss
    requests1 = await asyncio.to_thread(api_requests, cp)
    lat = sorted(running[k] - created[k] for k in running if k in created)
    delta = requests1 - requests0
    run = Run(node=node, n=n, throughput=n / span, p50=statistics.median(lat),
              p99=lat[min(len(lat) - 1, int(0.99 * len(lat)))],
              requests_per_pod=sum(delta.values()) / n,
              top_requests=", ".join(f"{k} {v / n:.1f}" for k, v in delta.most_common(5)),
              cpu_per_1000=(cpu1 - cpu0) / n * 1000, rss_mib=rss / 2**20)
    await core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
    await core.delete_namespace(ns)
    return run


async def settle(pid: int, quiet: float = 0.05, most: float = 15.0) -> None:
    """Until the node is idle (under ``quiet`` CPU seconds in a second), at most ``most`` s:
    work that trails the last Running (vk-eci copies ECI's events beside the status writes)
    is charged to the run's CPU and API requests."""
    started = time.monotonic()
    before = proc_stat(pid).cpu_seconds
    while time.monotonic() < started + most:
        await asyncio.sleep(1.0)
        now = proc_stat(pid).cpu_seconds
        if now - before < quiet:
            break
        before = now
    print(f"# node {pid} idle {time.monotonic() - started:.0f} s after the last Running",
          file=sys.stderr)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


async def node_ready(api: client.ApiClient, name: str, proc: subprocess.Popen[bytes],
                     log: Path) -> None:
    core = client.CoreV1Api(api)
    for _ in range(600):
        if proc.poll() is not None:
            tail = (await asyncio.to_thread(log.read_text))[-3000:]
            raise SystemExit(f"{name} exited {proc.returncode}:\n{tail}")
        with contextlib.suppress(Exception):
            node = await core.read_node(name)
            if any(c.type == "Ready" and c.status == "True"
                   for c in node.status.conditions or []):
                return
        await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log.read_text))[-3000:]
    raise SystemExit(f"{name} never Ready:\n{tail}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def run_go(cp: cluster.ControlPlane, api: client.ApiClient, n: int, work: Path,
                 within: float) -> Run:
    name = f"go-vk-{n}"
    cfg = work / "mock.json"
    cfg.write_text(json.dumps({name: {"cpu": "100000", "memory": "100Ti", "pods": "10000"}}))
    log = work / f"{name}.log"
    # The Go node's kubelet API serves TLS only: a throwaway self-signed pair, as vk-eci makes.
    cert, key = work / "go-vk.crt", work / "go-vk.key"
    if not cert.exists():
        await asyncio.to_thread(
            subprocess.run, ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj",
                             "/CN=go-vk"], check=True, capture_output=True)
    env = dict(os.environ, KUBELET_PORT=str(free_port()), VKUBELET_POD_IP="127.0.0.1",
               APISERVER_CERT_LOCATION=str(cert), APISERVER_KEY_LOCATION=str(key),
               APISERVER_CA_CERT_LOCATION=str(cp.dir / "pki" / "ca.crt"))
    proc = start([str(go_virtual_kubelet()), "--provider", "mock", "--provider-config",
                  str(cfg), "--nodename", name, "--kubeconfig", str(cp.kubeconfig),
                  "--metrics-addr", f"127.0.0.1:{free_port()}", "--pod-sync-workers", "32"],
                 env, log)
    try:
        await node_ready(api, name, proc, log)
        return await measure(cp, api, name, proc, log, n, within)
    finally:
        stop(proc)
        cp.kubectl("delete", "node", name, "--wait=false", check=False)


async def run_go_retrying(cp: cluster.ControlPlane, api: client.ApiClient, n: int, work: Path,
                          within: float, notes: list[str], attempts: int = 2) -> Run:
    """The Go mock provider's pod map is not locked: under 32 sync workers it can die with
    ``concurrent map read and map write``. Said in the notes, and that size run once more."""
    for attempt in range(1, attempts + 1):
        try:
            return await run_go(cp, api, n, work, within)
        except NodeExited as e:
            notes.append(f"{n:,} pods: the Go node died (attempt {attempt}): {e}")
            print(f"# {notes[-1]}", file=sys.stderr)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


async def run_vk_eci(cp: cluster.ControlPlane, api: client.ApiClient, n: int, work: Path,
                     within: float, limits: bool, profile: Path | None) -> Run:
    name = f"vk-eci-{n}-{'limits' if limits else 'nolimits'}"
    port = free_port()
    unlimited = ["CreateContainerGroup=0", "DescribeContainerGroups=0",
                 "DescribeContainerGroupStatus=0", "DeleteContainerGroup=0",
                 "DescribeContainerGroupEvents=0", "DescribeRegions=0"]
    emu_argv = [sys.executable, "-m", "vk_eci", "emulator", "--host", "127.0.0.1", "--port",
                str(port), "--access-key-id", "AK", "--access-key-secret", "SK",
                "--time-scale", "0.0001"]
    flags: dict[str, Any] = {"log-level": "warning", "pod-workers": "32"}
    if not limits:
        emu_argv += [a for r in unlimited for a in ("--rate-limit", r)]
        flags["eci-rate-limits"] = ",".join(unlimited)
    emu = start(emu_argv, dict(os.environ), work / f"emulator-{name}.log")
    log = work / f"{name}.log"
    node = None
    try:
        await asyncio.sleep(2)
        node = start(node_command(cp.kubeconfig, f"127.0.0.1:{port}", name, free_port(),
                                  **flags), node_env(), log)
        await node_ready(api, name, node, log)
        spy = None
        if profile is not None:
            # Sampled from outside (py-spy), so the node's own CPU figure is barely touched.
            await asyncio.to_thread(profile.mkdir, parents=True, exist_ok=True)
            spy = start(["py-spy", "record", "--pid", str(node.pid), "--rate", "100",
                         "--format", "raw", "-o", str(profile / f"{name}.txt")],
                        dict(os.environ), work / f"py-spy-{name}.log")
        try:
            return await measure(cp, api, name, node, log, n, within)
        finally:
            if spy is not None:
                spy.send_signal(2)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(30)
    finally:
        if node is not None:
            stop(node)
        stop(emu)
        cp.kubectl("delete", "node", name, "--wait=false", check=False)


async def bench(args: argparse.Namespace, rep: Report) -> None:
    work = Path(args.dir or tempfile.mkdtemp(prefix="vk-vs-"))
    cp = await asyncio.to_thread(cluster.up, work / "cp")
    rows: list[list[str]] = []
    notes: list[str] = []
    try:
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(cp.kubeconfig),
                                      client_configuration=configuration)
        configuration.connection_pool_maxsize = 64
        async with client.ApiClient(configuration) as api:
            for n in args.sizes:
                within = 120 + n * 0.3  # the Go node runs ~5 pods/s
                try:
                    go = await run_go_retrying(cp, api, n, work, within, notes)
                except (NodeExited, TimeoutError) as e:
                    notes.append(f"{n:,} pods: not measured: {e}")
                    print(f"# {notes[-1]}", file=sys.stderr)
                    continue
                for limits in (True, False):
                    try:
                        ours = await run_vk_eci(cp, api, n, work, within, limits,
                                                Path(args.profile) if args.profile else None)
                    except (NodeExited, TimeoutError) as e:
                        notes.append(f"{n:,} pods, vk-eci: not measured: {e}")
                        print(f"# {notes[-1]}", file=sys.stderr)
                        continue
                    label = "ECI limits on" if limits else "limits off"
                    rows.append([
                        f"{n:,}", label,
                        f"{ours.throughput:.1f} / {go.throughput:.1f} = "
                        f"{ours.throughput / go.throughput:.2f}",
                        f"{ours.p50:.2f} / {go.p50:.2f}", f"{ours.p99:.2f} / {go.p99:.2f}",
                        f"{ours.requests_per_pod:.1f} / {go.requests_per_pod:.1f} = "
                        f"{ours.requests_per_pod / go.requests_per_pod:.2f}",
                        f"{ours.cpu_per_1000:.1f} / {go.cpu_per_1000:.1f} = "
                        f"{ours.cpu_per_1000 / max(go.cpu_per_1000, 0.01):.2f}",
                        f"{ours.rss_mib:.0f} / {go.rss_mib:.0f}"])
                    print(f"# {rows[-1]}", file=sys.stderr)
                    notes.append(f"{n:,} pods, {label}: requests per pod by kind: vk-eci "
                                 f"{ours.top_requests}; Go VK {go.top_requests}")
                    if not limits:
                        at = f" at {n:,} pods, limits off"
                        rep.goal("vk-eci CPU per pod / Go VK's" + at,
                                 ours.cpu_per_1000 / max(go.cpu_per_1000, 0.01), "<=", 2, "x")
                        rep.goal("vk-eci throughput / Go VK's" + at,
                                 ours.throughput / go.throughput, ">=", 1, "x")
                        rep.goal("API-server requests per pod, vk-eci / Go VK" + at,
                                 ours.requests_per_pod / go.requests_per_pod, "<=", 1, "x")
                        rep.goal("vk-eci API-server requests per pod (the benchmark's own "
                                 "create included)" + at, ours.requests_per_pod, "<=", 6, "")
    finally:
        await asyncio.to_thread(cluster.down, work / "cp")
    rep.table(["pods", "vk-eci run", "pods/s (vk-eci / Go = ratio)",
               "latency p50 s (vk-eci / Go)", "latency p99 s (vk-eci / Go)",
               "API requests per pod (ratio)", "node CPU s per 1,000 pods (ratio)",
               "node peak RSS MiB (vk-eci / Go)"], rows)
    for line in notes:
        rep.text(f"- {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", help="pod counts (default 200 1000 3000)")
    ap.add_argument("--quick", action="store_true", help="200 pods only")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="py-spy each vk-eci node during its run; raw stacks into DIR")
    args = ap.parse_args()
    args.sizes = args.sizes or ([200] if args.quick else [200, 1000, 3000])
    if max(args.sizes) > 5000:
        ap.error("--sizes: at most 5000 (a bounded benchmark)")
    go_virtual_kubelet()
    rep = Report("bench_vs_virtual_kubelet" + ("_quick" if args.quick else ""), __doc__)
    rep.text(f"Go virtual-kubelet {VK_VERSION} (mock provider) vs vk-eci against the ECI "
             "emulator in its own process at time scale 0.0001. Each cell: vk-eci / Go VK. "
             "The Go node's mock provider does no cloud calls at all; vk-eci's figures include "
             "its ECI client (signing, HTTP to the emulator). The Go node's pods/s is bound by "
             "its Kubernetes client's own throttling (client-go's default 5 QPS, burst 10; its "
             "log: \"client-side throttling\"): the pods/s ratio is against that default, "
             "not against what the Go node could do with a higher QPS.")
    asyncio.run(bench(args, rep))
    rep.finish()


if __name__ == "__main__":
    main()
