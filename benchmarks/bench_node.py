"""The virtual node end to end: pods/s to Running, latency, ECI calls per pod, node CPU and
memory, against baselines measured in the same run.

A local control plane, the ECI emulator in its own process (``vk-eci emulator``, time scale
0.001: a modelled image pull takes milliseconds, so the figures are the node's and ECI's request
handling, not a pull model), a fresh emulator per run, and ``vk-eci run`` as a subprocess. Per
size N (default 200, and 2,000: above ECI's 1,000 creates a minute; ``--quick``: 200), the same
N one-container pods, in this order:

- **direct SDK** (baseline: ECI without the node): the CreateContainerGroup requests the node
  would send (built by the node's own translation from the same pods) sent straight to the
  emulator with the official SDK, 32 in flight; a Throttling answer is retried after 1 s.
  Running = the emulator's exact Running time (``/__emulator/groups``). The best any client
  could do against the same ECI.
- **node, incremental** (the default status mode): the N pods created on the API server
  (32 in flight) for the node; Running = first seen by a pod watch.
- **node, full listing** (baseline: the old status mode, ``--status-sync-mode full``, a
  listing every 5 s).
- **direct SDK** and **node, incremental** again with ECI's limits off (the emulator's and the
  node's client budgets), unless ``--no-limits-off``: the node's own cost without ECI's limits.

ECI's rate limits are ON in the first three (the emulator enforces ECI's documented per-minute
values; the node's client budgets refill at 0.85 of them). Figures per run: pods/s (N / first
create to last Running), latency create request sent -> Running p50/p99, ECI calls per pod by
action and the Throttling answers (the node's own ``vk_eci_eci_api_requests_total``; the
baseline counts its calls), node CPU seconds per 1,000 pods over the run and peak RSS. Goals
(judged on the printed figures): no Throttling answer to the node at ECI's limits; at ECI's
limits the node's pods/s at least 0.8x the direct SDK's (ECI, not the node, is the bottleneck);
the incremental mode spends no more ECI calls per pod and no more node CPU than the full
listing.

Bounded: N at most 2,000, every wait has a deadline (``--timeout``), pods and emulators are
removed after each run. Writes ``benchmarks/results/bench_node.md`` (``--quick``:
``bench_node_quick.md``). Usage: ``python3 benchmarks/bench_node.py [--quick] [--sizes 200 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from alibabacloud_eci20180808.client import Client as SdkClient
from alibabacloud_tea_util import models as util_models
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_status import (
    Watcher,
    counter,
    metrics,
    quantile,
    transitions,
    wait_for,
)
from benchmarks.procstat import proc_stat
from benchmarks.report import Report
from tests.fixtures.node import NodeProcess, free_port, node_command, node_env
from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.provider_state import ProviderSettings
from vk_eci.cloud.translation.pod import pod_to_request
from vk_eci.controlplane import cluster

IN_FLIGHT = 32
UNLIMITED = ("CreateContainerGroup=0", "DescribeContainerGroups=0",
             "DescribeContainerGroupStatus=0", "DeleteContainerGroup=0",
             "DescribeContainerGroupEvents=0", "DescribeRegions=0")


@dataclass
class Run:
    label: str
    n: int
    pods_per_s: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    running: int = 0
    calls: Counter[str] = field(default_factory=Counter)  # whole calls
    throttled: float = 0.0
    cpu_per_1000: float | None = None
    rss_mib: float | None = None

    @property
    def calls_per_pod(self) -> float:
        return sum(self.calls.values()) / self.n


def pod_body(name: str, node: str) -> Any:
    # Runs until deleted: a finite sleep ends within the run at the emulator's time scale (10 h
    # is 36 s at 0.001), and every restart after it would be status traffic the benchmark never
    # meant to measure (at 50,000 pods it was most of it).
    return {"metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": "busybox:1.36",
                                     "command": ["sleep", "infinity"]}]}}


class Emulator:
    """``vk-eci emulator`` in its own process, fresh for each run (rate windows start empty)."""

    def __init__(self, time_scale: float, limits: bool,
                 raised: tuple[str, ...] = ()) -> None:
        # raised: ACTION=N limits of the account over ECI's (bench_fleet's runs at scale).
        self.time_scale, self.limits, self.raised = time_scale, limits, raised
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Emulator:
        argv = [sys.executable, "-m", "vk_eci", "emulator", "--host", "127.0.0.1", "--port",
                str(self.port), "--access-key-id", "AK", "--access-key-secret", "SK",
                "--time-scale", str(self.time_scale)]
        if not self.limits:
            argv += [a for r in UNLIMITED for a in ("--rate-limit", r)]
        argv += [a for r in self.raised for a in ("--rate-limit", r)]
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert b"listening" in line, line
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            await self.proc.wait()


def latencies(start: dict[str, float], done: dict[str, float]) -> list[float]:
    return [done[k] - start[k] for k in start if k in done]


def finish(run: Run, first: float, start: dict[str, float], done: dict[str, float]) -> Run:
    lat = latencies(start, done)
    run.running = len(lat)
    if lat:
        run.pods_per_s = len(lat) / (max(done.values()) - first)
        run.p50, run.p99 = quantile(lat, 0.5), quantile(lat, 0.99)
    return run


async def direct_sdk(n: int, emu: Emulator, http: aiohttp.ClientSession,
                     within: float) -> Run:
    """Baseline: the node's requests for the same pods, straight to ECI with the official SDK."""
    label = "direct SDK" + ("" if emu.limits else ", limits off")
    run = Run(label, n)
    sdk = SdkClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                    endpoint=emu.endpoint, protocol="http").sdk_config())
    runtime = util_models.RuntimeOptions(autoretry=False)
    ctx = ProviderSettings(Placement(region_id="cn-hangzhou", vswitch_ids=("vsw-test",),
                                     security_group_id="sg-test", zone_id="cn-hangzhou-h"),
                           cluster_name="c-direct", node_name="direct").base_context()
    ns = "direct"
    requests: dict[str, Any] = {}
    for i in range(n):
        pod = V1Pod(metadata=V1ObjectMeta(name=f"p{i}", namespace=ns, uid=str(uuid.uuid4())),
                    spec=V1PodSpec(node_name="direct", termination_grace_period_seconds=0,
                                   containers=[V1Container(name="c", image="busybox:1.36",
                                                           command=["sleep", "infinity"])]))
        requests[naming.group_name(ns, f"p{i}")] = pod_to_request(pod, ctx)
    sem = asyncio.Semaphore(IN_FLIGHT)
    created: dict[str, float] = {}

    async def one(name: str, req: Any) -> None:
        async with sem:
            sent = time.time()
            while True:
                try:
                    await sdk.create_container_group_with_options_async(req, runtime)
                except Exception as e:  # the SDK raises its TeaException for every error
                    code = str(getattr(e, "code", ""))
                    run.calls[f"CreateContainerGroup {code or type(e).__name__}"] += 1
                    if not code.startswith("Throttling"):
                        raise
                    run.throttled += 1
                    await asyncio.sleep(1.0)
                    continue
                run.calls["CreateContainerGroup"] += 1
                created[name] = sent
                return

    first = time.time()
    await asyncio.wait_for(asyncio.gather(*(one(k, r) for k, r in requests.items())), within)
    running: dict[str, float] = {}

    async def all_running() -> bool:
        groups = await transitions(http, emu.endpoint)
        running.update({k: float(g["running"]) for k, g in groups.items()
                        if k in created and g.get("running") is not None})
        return len(running) >= n

    await wait_for(f"{n} groups Running (direct SDK)", all_running,
                   time.monotonic() + within, 0.5)
    return finish(run, first, created, running)


async def through_node(n: int, emu: Emulator, api: client.ApiClient, kubeconfig: Path,
                       mode: str, within: float) -> Run:
    """The same pods through the API server and ``vk-eci run``."""
    label = f"node, {mode}" + ("" if emu.limits else ", limits off")
    run = Run(label, n)
    core = client.CoreV1Api(api)
    ns = await fresh_namespace(core, "bench")
    name = f"bench-vk-{uuid.uuid4().hex[:4]}"
    port = free_port()
    flags: dict[str, Any] = {"status-sync-interval": "5", "pod-workers": "32",
                             "lease-renew-interval": "10", "log-level": "warning"}
    if mode == "full listing":
        flags["status-sync-mode"] = "full"
    if not emu.limits:
        flags["eci-rate-limits"] = ",".join(UNLIMITED)
    node = NodeProcess(name=name, argv=node_command(kubeconfig, emu.endpoint, name, port,
                                                    **flags),
                       env=node_env(), log_path=Path(tempfile.mkstemp(suffix=".log")[1]),
                       metrics_port=port)
    watcher = Watcher(api, namespace=ns)
    await node.start()
    try:
        assert node.proc is not None

        async def synced() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                return counter(await metrics(port), "vk_eci_pod_status_sync_cycles_total") >= 1
            return False

        if not await wait_for(f"node up ({label})", synced, time.monotonic() + within):
            raise TimeoutError(f"node not up ({label})")
        before = await metrics(port)
        cpu0 = proc_stat(node.proc.pid).cpu_seconds
        watcher.start()
        await asyncio.sleep(0.5)
        sem = asyncio.Semaphore(IN_FLIGHT)
        created: dict[str, float] = {}

        async def one(i: int) -> None:
            async with sem:
                created[f"p{i}"] = time.time()
                await core.create_namespaced_pod(ns, pod_body(f"p{i}", name))

        first = time.time()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), within)

        def running() -> dict[str, float]:
            return {k: v["Running"] for k, v in watcher.seen.items() if "Running" in v}

        async def all_running() -> bool:
            return len(running()) >= n

        await wait_for(f"{n} pods Running ({label})", all_running,
                       time.monotonic() + within, 0.25)
        after = await metrics(port)
        stat = proc_stat(node.proc.pid)
        run.cpu_per_1000 = (stat.cpu_seconds - cpu0) / n * 1000
        run.rss_mib = stat.peak_rss / 2**20
        for (metric, labels), value in after.items():
            if metric != "vk_eci_eci_api_requests_total":
                continue
            delta = value - before.get((metric, labels), 0.0)
            if delta:
                parts = dict(p.split("=", 1) for p in labels.split(","))
                action, code = parts["action"].strip('"'), parts["code"].strip('"')
                run.calls[action if code == "OK" else f"{action} {code}"] += round(delta)
                if code.startswith("Throttling"):
                    run.throttled += delta
        return finish(run, first, created, running())
    finally:
        if watcher.task is not None:
            watcher.task.cancel()
        with contextlib.suppress(Exception):
            await core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
        await node.stop()
        with contextlib.suppress(Exception):
            await core.delete_namespace(ns)
            await core.delete_node(name)


async def fresh_namespace(core: client.CoreV1Api, prefix: str) -> str:
    """A new namespace ``<prefix>-<random>``, once pods can be admitted in it."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    for _ in range(100):  # pods are admitted once the namespace's service account exists
        with contextlib.suppress(Exception):
            await core.read_namespaced_service_account("default", ns)
            break
        await asyncio.sleep(0.1)
    return ns


def row(r: Run, base: Run) -> list[str]:
    calls = ", ".join(f"{k} {v / r.n:.2f}" for k, v in sorted(r.calls.items()))
    return [f"{r.n:,}", r.label, f"{r.running}/{r.n}", f"{r.pods_per_s:.1f}",
            f"{r.pods_per_s / base.pods_per_s:.2f}" if base.pods_per_s else "-",
            f"{r.p50:.3f}", f"{r.p99:.3f}", f"{r.calls_per_pod:.2f}", f"{r.throttled:.0f}",
            "-" if r.cpu_per_1000 is None else f"{r.cpu_per_1000:.1f}",
            "-" if r.rss_mib is None else f"{r.rss_mib:.0f}", calls]


@contextlib.asynccontextmanager
async def clients(kubeconfig: Path) -> AsyncIterator[tuple[client.ApiClient,
                                                           aiohttp.ClientSession]]:
    """An API client (64 connections: creates run in parallel) and an HTTP session."""
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig),
                                  client_configuration=configuration)
    configuration.connection_pool_maxsize = 64
    async with client.ApiClient(configuration) as api, aiohttp.ClientSession() as http:
        yield api, http


async def bench(args: argparse.Namespace, rep: Report) -> None:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="vk-bench-node-"))
    cp = await asyncio.to_thread(cluster.up, directory)
    rows: list[list[str]] = []
    try:
        async with clients(cp.kubeconfig) as (api, http):
            for n in args.sizes:
                within = args.timeout
                async with Emulator(args.time_scale, True) as emu:
                    direct = await direct_sdk(n, emu, http, within)
                async with Emulator(args.time_scale, True) as emu:
                    inc = await through_node(n, emu, api, cp.kubeconfig, "incremental", within)
                async with Emulator(args.time_scale, True) as emu:
                    full = await through_node(n, emu, api, cp.kubeconfig, "full listing", within)
                runs = [(direct, direct), (inc, direct), (full, direct)]
                if args.limits_off:
                    async with Emulator(args.time_scale, False) as emu:
                        direct_off = await direct_sdk(n, emu, http, within)
                    async with Emulator(args.time_scale, False) as emu:
                        inc_off = await through_node(n, emu, api, cp.kubeconfig, "incremental",
                                                     within)
                    runs += [(direct_off, direct_off), (inc_off, direct_off)]
                for r, base in runs:
                    rows.append(row(r, base))
                    print(f"# {rows[-1]}", file=sys.stderr)
                at = f" at {n:,} pods"
                rep.goal("pods Running through the node (incremental)" + at, inc.running,
                         "==", n)
                rep.goal("Throttling answers to the node at ECI's limits (incremental)" + at,
                         inc.throttled, "==", 0)
                rep.goal("node pods/s / direct SDK pods/s at ECI's limits" + at,
                         inc.pods_per_s / max(direct.pods_per_s, 1e-9), ">=", 0.8, "x")
                rep.goal("ECI calls per pod, incremental / full listing" + at,
                         inc.calls_per_pod / max(full.calls_per_pod, 1e-9), "<=", 1, "x")
                assert inc.cpu_per_1000 is not None and full.cpu_per_1000 is not None
                rep.goal("node CPU per pod, incremental / full listing" + at,
                         inc.cpu_per_1000 / max(full.cpu_per_1000, 1e-9), "<=", 1, "x")
    finally:
        await asyncio.to_thread(cluster.down, directory)
    rep.table(["pods", "run", "Running", "pods/s", "pods/s / direct SDK", "latency p50 s",
               "latency p99 s", "ECI calls per pod", "throttled", "node CPU s per 1,000 pods",
               "node peak RSS MiB", "ECI calls per pod by action"], rows,
              title="Create -> Running, per run (a fresh emulator each)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", help="pod counts (default 200 2000)")
    ap.add_argument("--quick", action="store_true", help="200 pods only")
    ap.add_argument("--time-scale", type=float, default=0.001)
    ap.add_argument("--timeout", type=float, default=400.0, help="seconds per wait")
    ap.add_argument("--no-limits-off", dest="limits_off", action="store_false",
                    help="skip the runs with ECI's limits off")
    ap.add_argument("--dir", default=None, help="control-plane state directory")
    args = ap.parse_args()
    args.sizes = args.sizes or ([200] if args.quick else [200, 2000])
    if not all(1 <= n <= 2000 for n in args.sizes):
        ap.error("--sizes: 1 to 2000 pods (a bounded benchmark)")
    rep = Report("bench_node" + ("_quick" if args.quick else ""), __doc__)
    rep.text(f"Emulator time scale {args.time_scale}, {IN_FLIGHT} creates in flight, a fresh "
             "emulator per run. \"pods/s / direct SDK\": against the direct SDK run with the "
             "same limits. ECI calls per pod: the node's own count (vk_eci_eci_api_requests_"
             "total) over the run; a code after an action is an error answer.")
    asyncio.run(bench(args, rep))
    rep.finish()


if __name__ == "__main__":
    main()
