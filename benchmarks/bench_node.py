"""Benchmark of the virtual node: pods/s to Running, ECI calls per pod, node CPU and memory.

Runs a local control plane, the ECI emulator at a tiny time scale (in this process) and
``vk-eci run`` as a subprocess, then:

1. creates ``--pods`` pods (default 200) at once and measures pods/s from the first create to
   the last pod Running, and ECI API calls per pod (create + share of status calls), with the
   number of ``DescribeContainerGroups`` calls per status cycle against ceil(pods/20);
2. scales to ``--big`` pods (default 1000) and reports the node process's CPU seconds and peak
   RSS (VmHWM) for the whole run.

Bounded: every phase has a deadline (``--timeout``), and pods are deleted at the end.
Usage: ``python benchmarks/bench_node.py [--pods 200] [--big 1000] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from procstat import proc_stat

from tests.fixtures.node import NodeProcess, free_port, node_command, node_env
from vk_eci.controlplane import cluster
from vk_eci.emulator import Emulator

NS = "bench"


async def node_metric(port: int, name: str) -> float:
    """Sum of the samples of ``name`` on the node's /metrics."""
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


async def create_pods(core: client.CoreV1Api, node: str, start: int, count: int) -> None:
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with sem:
            body: Any = {
                "metadata": {"name": f"p{i}"},
                "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": "busybox:1.36",
                                         "command": ["sleep", "36000"]}]}}
            await core.create_namespaced_pod(NS, body)

    await asyncio.gather(*(one(i) for i in range(start, start + count)))


async def wait_running(core: client.CoreV1Api, want: int, deadline: float) -> float:
    while time.monotonic() < deadline:
        pods = (await core.list_namespaced_pod(NS)).items
        running = sum(1 for p in pods if p.status.phase == "Running")
        if running >= want:
            return time.monotonic()
        await asyncio.sleep(0.25)
    raise TimeoutError(f"only {running} of {want} pods Running before the deadline")


async def bench(args: argparse.Namespace) -> None:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="vk-bench-"))
    cp = cluster.up(directory)
    try:
        async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                            time_scale=args.time_scale, rate_limits={}) as emu:
            await run(cp, emu, args)
    finally:
        cluster.down(directory)


async def run(cp: Any, emu: Any, args: argparse.Namespace) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cp.kubeconfig),
                                  client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        namespace: Any = {"metadata": {"name": NS}}
        await core.create_namespace(namespace)
        port = free_port()
        interval = args.sync_interval
        node = NodeProcess(name="bench-vk", argv=node_command(
            cp.kubeconfig, emu.endpoint, "bench-vk", port, **{
                "status-sync-interval": str(interval), "pod-workers": "32",
                "log-level": "warning"}),
            env=node_env(), log_path=Path(tempfile.mkstemp(suffix=".log")[1]),
            metrics_port=port)
        await node.start()
        try:
            assert node.proc is not None
            await asyncio.sleep(3)
            calls0 = {a: len(emu.recorded(a)) for a in ("CreateContainerGroup",
                                                        "DescribeContainerGroups")}
            t0 = time.monotonic()
            await create_pods(core, node.name, 0, args.pods)
            t1 = await wait_running(core, args.pods, t0 + args.timeout)
            creates = len(emu.recorded("CreateContainerGroup")) - calls0["CreateContainerGroup"]
            describes = (len(emu.recorded("DescribeContainerGroups"))
                         - calls0["DescribeContainerGroups"])
            print(f"{args.pods} pods created→Running in {t1 - t0:.1f}s: "
                  f"{args.pods / (t1 - t0):.1f} pods/s")
            print(f"ECI calls per pod: {(creates + describes) / args.pods:.2f} "
                  f"(CreateContainerGroup {creates}, DescribeContainerGroups {describes})")
            # Steady state: DescribeContainerGroups calls per status cycle vs ceil(pods/20),
            # cycles counted by the node itself; no status should be rewritten.
            before = len(emu.recorded("DescribeContainerGroups"))
            cycles0 = await node_metric(port, "vk_eci_pod_status_sync_cycles_total")
            writes0 = await node_metric(port, "vk_eci_pod_status_writes_total")
            await asyncio.sleep(5 * interval)
            cycles = await node_metric(port, "vk_eci_pod_status_sync_cycles_total") - cycles0
            writes = await node_metric(port, "vk_eci_pod_status_writes_total") - writes0
            window_calls = emu.recorded("DescribeContainerGroups")[before:]
            per_cycle = len(window_calls) / max(cycles, 1)
            kinds = Counter(",".join(k for k in ("WithEvent", "ContainerGroupName",
                                                 "ContainerGroupIds", "NextToken") if k in r)
                            or "plain" for r in window_calls)
            print(f"steady-state DescribeContainerGroups by parameters: {dict(kinds)}")
            goal = math.ceil(args.pods / 20)
            print(f"steady state: {per_cycle:.1f} DescribeContainerGroups per cycle over "
                  f"{cycles:.0f} cycles (goal at most {goal}: "
                  f"{'met' if per_cycle <= goal else 'NOT met'}); {writes:.0f} status writes")
            if args.big > args.pods:
                t2 = time.monotonic()
                await create_pods(core, node.name, args.pods, args.big - args.pods)
                t3 = await wait_running(core, args.big, t2 + args.timeout)
                print(f"{args.big - args.pods} more pods Running in {t3 - t2:.1f}s")
            stat = proc_stat(node.proc.pid)
            cpu, peak = stat.cpu_seconds, stat.peak_rss
            print(f"node process for {args.big} pods: CPU {cpu:.1f}s, "
                  f"peak RSS {peak / 2**20:.0f} MiB")
        finally:
            await core.delete_collection_namespaced_pod(NS, grace_period_seconds=0)
            await node.stop()
            await core.delete_namespace(NS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--big", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=0.001)
    parser.add_argument("--sync-interval", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--dir", default=None, help="control-plane state directory")
    args = parser.parse_args()
    if not 1 <= args.pods <= 2000 or args.big > 2000:
        parser.error("--pods/--big: at most 2000 (a bounded benchmark)")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
