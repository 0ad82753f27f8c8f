"""What a pod costs the node at rest: RSS, and Python objects per pod by where they were made.

One control plane; the ECI emulator in its own process (time scale 0.0001, every rate limit
off, so that a population is reached in minutes); the node ``vk-eci run`` as a subprocess with
its ECI limits off and a full listing every 20 s. Pods (one ``busybox`` container, ``sleep
infinity``) are created 32 at a time up to each size in ``--sizes``; once all are Running and a
full listing has passed (25 s), the node is at rest and is measured. Two runs:

- untraced: the node's RSS (``/proc``) at 50 pods and at each size;
- traced: the same node under tracemalloc (``benchmarks/memtrace.py``; tracing slows it and adds
  its own memory, so no RSS is read there): a snapshot after garbage collection at 50 pods and
  at each size. Per pod = the growth between two snapshots / the pods added, by the file and
  line that allocated it, the largest listed.

Bounded: every wait has a deadline (15 min per size). Usage:
``python benchmarks/bench_memory.py [--sizes 1000,10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from procstat import proc_stat
from report import Report

from tests.fixtures.node import free_port, node_command, node_env
from vk_eci.controlplane import cluster

WARM = 50
AT_REST = 25.0  # seconds after the last Running: one full listing (every 20 s) has passed
LIMITS_OFF = ["CreateContainerGroup=0", "DescribeContainerGroups=0",
              "DescribeContainerGroupStatus=0", "DeleteContainerGroup=0",
              "DescribeContainerGroupEvents=0", "DescribeRegions=0"]
ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


async def create(core: Any, namespace: str, node: str, lo: int, hi: int) -> None:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        body = {"metadata": {"name": f"p{i}"}, "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "c", "image": "busybox:1.36",
                            "command": ["sleep", "infinity"]}]}}
        async with sem:
            await core.create_namespaced_pod(namespace, body)

    await asyncio.gather(*(one(i) for i in range(lo, hi)))


async def running(core: Any, namespace: str, n: int, deadline: float) -> None:
    while True:
        pods = (await core.list_namespaced_pod(namespace)).items
        if sum(1 for p in pods if p.status and p.status.phase == "Running") >= n:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} pods Running in time")
        await asyncio.sleep(2)


async def _snapshot(proc: asyncio.subprocess.Process, directory: Path,
                    k: int) -> tracemalloc.Snapshot:
    proc.send_signal(signal.SIGUSR1)
    done = directory / f"snap-{k}.done"
    deadline = time.monotonic() + 300
    while not done.exists():
        if time.monotonic() > deadline or proc.returncode is not None:
            raise TimeoutError("the traced node wrote no snapshot")
        await asyncio.sleep(0.5)
    return await asyncio.to_thread(tracemalloc.Snapshot.load, str(directory / f"snap-{k}"))


async def population(cp: Any, work: Path, sizes: list[int], traced: bool) -> dict[str, Any]:
    """One node from 0 to each size; RSS (untraced) or snapshots (traced) at rest."""
    port = free_port()
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "emulator", "--host", "127.0.0.1", "--port", str(port),
        "--access-key-id", "AK", "--access-key-secret", "SK", "--time-scale", "0.0001",
        *[a for limit in LIMITS_OFF for a in ("--rate-limit", limit)],
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    name = f"mem-{'traced' if traced else 'rss'}"
    snaps = work / name
    await asyncio.to_thread(snaps.mkdir)
    node: asyncio.subprocess.Process | None = None
    out: dict[str, Any] = {"rss": {}, "snapshots": {}}
    try:
        await asyncio.sleep(2)
        flags: dict[str, str | bool] = {
            "log-level": "warning", "pod-workers": "32", "eci-rate-limits": ",".join(LIMITS_OFF),
            "status-resync-interval": "20"}
        argv = node_command(cp.kubeconfig, f"127.0.0.1:{port}", name, free_port(), **flags)
        if traced:
            argv = [sys.executable, str(ROOT / "benchmarks" / "memtrace.py"), *argv[3:]]
        node = await asyncio.create_subprocess_exec(
            *argv, env={**node_env(), "VK_ECI_SNAPSHOT_DIR": str(snaps)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(cp.kubeconfig),
                                      client_configuration=configuration)
        async with client.ApiClient(configuration) as api:
            core = client.CoreV1Api(api)
            namespace: Any = {"metadata": {"name": name}}
            await core.create_namespace(namespace)
            await asyncio.sleep(3)
            have = 0
            for k, size in enumerate([WARM, *sizes], start=1):
                await create(core, name, name, have, size)
                await running(core, name, size, time.monotonic() + 900)
                have = size
                await asyncio.sleep(AT_REST)
                if traced:
                    out["snapshots"][size] = await _snapshot(node, snaps, k)
                else:
                    out["rss"][size] = proc_stat(node.pid).rss
                print(f"# {name}: {size:,} pods at rest", file=sys.stderr, flush=True)
    finally:
        for process in (node, emulator):
            if process is not None and process.returncode is None:
                process.terminate()
                async with asyncio.timeout(30):
                    await process.wait()
    return out


def _where(frame: Any) -> str:
    path = Path(frame.filename)
    try:
        return f"{path.resolve().relative_to(ROOT)}:{frame.lineno}"
    except ValueError:
        parts = path.parts  # a library's: from its package (site-packages, or the stdlib's)
        cut = parts.index("site-packages") + 1 if "site-packages" in parts else len(parts) - 2
        return f"{'/'.join(parts[cut:])}:{frame.lineno}"


def per_pod(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot,
            pods: int) -> tuple[float, list[tuple[str, float, float]]]:
    """Bytes per pod in all, and by allocating line (bytes, objects), largest first."""
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats) / pods
    lines: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for s in stats:
        where = _where(s.traceback[0])
        lines[where] += s.size_diff
        counts[where] += s.count_diff
    top = [(w, b / pods, counts[w] / pods) for w, b in lines.most_common(12)]
    return total, top


async def main_async(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    rep = Report("bench_memory", __doc__)
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    cp = await asyncio.to_thread(cluster.up, work / "cp")
    try:
        plain = await population(cp, work, sizes, traced=False)
        traced = await population(cp, work, sizes, traced=True)
    finally:
        await asyncio.to_thread(cluster.down, work / "cp")
    rows = []
    previous = WARM
    for size in sizes:
        rss = plain["rss"][size]
        growth = (rss - plain["rss"][previous]) / (size - previous)
        total, _ = per_pod(traced["snapshots"][previous], traced["snapshots"][size],
                           size - previous)
        rows.append([f"{size:,}", f"{rss / MiB:.0f}", f"{previous:,} → {size:,}",
                     f"{growth / 1024:.1f}", f"{total / 1024:.1f}"])
        previous = size
    rep.text(f"RSS at {WARM} pods: {plain['rss'][WARM] / MiB:.0f} MiB.")
    rep.table(["pods", "RSS MiB", "between", "RSS growth KiB per pod",
               "traced Python objects KiB per pod"], rows,
              title="The node at rest (untraced RSS; traced objects from the second run)")
    last = sizes[-1]
    first = WARM if len(sizes) == 1 else sizes[-2]
    total, top = per_pod(traced["snapshots"][first], traced["snapshots"][last], last - first)
    rep.table(["allocated at", "bytes per pod", "objects per pod"],
              [[f"`{w}`", f"{b:,.0f}", f"{n:.1f}"] for w, b, n in top],
              title=f"Where the traced growth from {first:,} to {last:,} pods was allocated "
                    f"({total / 1024:.1f} KiB per pod in all; the largest 12 lines)")
    if 10_000 in plain["rss"]:
        rep.goal("node RSS at 10,000 pods at rest (ECI limits off)",
                 plain["rss"][10_000] / MiB, "<=", 400, "MiB")
    rep.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000",
                        help="pod counts, comma-separated, growing (default 1000,10000)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
