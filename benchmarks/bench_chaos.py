"""Chaos suite: what the virtual node survives, with figures (docs/RELIABILITY.md).

One local control plane, the ECI emulator in this process (time scale 0.01, ECI's documented
rate limits on) and ``vk-eci run`` subprocesses. Each scenario starts its own node(s) in its own
namespace, puts pods on them, injects one fault, and then measures, from the end of the fault:

- converged: pods Running out of pods that should exist, with exactly one group each;
- duplicate groups (a second group for one pod) and orphan groups (a group with no pod): 0;
- pods wrongly deleted (a pod we did not delete that is gone or was replaced): 0;
- seconds to converge; for the leader kill, seconds until the standby writes pod status.

Scenarios: ``leader-sigkill`` (two replicas with election, SIGKILL of the leader mid-burst of
200 creates), ``apiserver-restart`` (kube-apiserver down 5 s mid-burst, etcd kept),
``eci-paused`` (the emulator hangs every request for ``--pause`` s while pods are created and
deleted), ``eci-storm`` (20% Throttling.User + 5% 5xx + 300 ms latency on every action for
``--storm`` s, with churn), ``watch-expiry`` (three API-server restarts with churn: watches
resumed from a version the new server does not hold), ``clock-skew+120``/``-120`` (the
emulator's clock 2 minutes ahead or behind the node's), ``duplicate-node`` (a second unelected
process for the same node).

Each scenario runs ``--repeat`` times (default 3) and reports its worst run. The pods that must
exist are fixed as the faults happen (the UIDs of our creates, less our deletes), never read
from a listing taken after a fault, which would hide a pod the node wrongly deleted.

Bounded: every wait has a deadline; ``--quick`` shortens the fault windows (20 s pause, 30 s
storm) and runs each scenario once, for a smoke run. Writes benchmarks/results/bench_chaos.md
(pasted into docs/RELIABILITY.md by benchmarks/readme.py). Usage:
``python benchmarks/bench_chaos.py [--quick] [--repeat N] [--only NAME ...] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import Report

from tests.fixtures.node import NodeProcess, free_port, node_command, node_env
from vk_eci.cloud.api.naming import TAG_NODE, TAG_POD_UID
from vk_eci.controlplane import cluster
from vk_eci.emulator import Emulator
from vk_eci.emulator.clock import RealClock

HEADS = ["scenario", "fault", "pods converged", "duplicate groups", "orphan groups",
         "pods wrongly deleted", "converge s", "failover s", "node NotReady seen", "runs"]


class SkewedClock(RealClock):
    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def now(self) -> float:
        return super().now() + self.offset


@dataclass
class World:
    cp: cluster.ControlPlane
    emu: Emulator
    core: client.CoreV1Api
    logs: Path
    procs: list[NodeProcess] = field(default_factory=list)

    async def node(self, name: str, emu: Emulator | None = None, **flags: Any) -> NodeProcess:
        port = free_port()
        flags.setdefault("log-level", "warning")
        proc = NodeProcess(name=name, argv=node_command(
            self.cp.kubeconfig, (emu or self.emu).endpoint, name, port, **flags),
            env=node_env(), log_path=self.logs / f"{name}-{flags.get('identity', 'solo')}.log",
            metrics_port=port)
        await proc.start()
        self.procs.append(proc)
        return proc

    async def namespace(self) -> str:
        ns = f"chaos-{uuid.uuid4().hex[:6]}"
        await self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=ns)))
        return ns

    async def create(self, ns: str, node: str, names: list[str]) -> dict[str, str]:
        """Create pods; their name → UID as the API server answered each create (so that the
        expected set never comes from a listing taken after a fault)."""
        sem = asyncio.Semaphore(20)
        uids: dict[str, str] = {}

        async def one(name: str) -> None:
            body: Any = {"metadata": {"name": name}, "spec": {
                "nodeName": node, "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": "busybox:1.36",
                                "command": ["sleep", "infinity"]}]}}
            async with sem:
                for _ in range(60):  # the API server may be restarting
                    try:
                        pod = await self.core.create_namespaced_pod(ns, body)
                        uids[name] = pod.metadata.uid
                        return
                    except Exception:
                        # A create whose answer was lost may have been done: ours then.
                        with contextlib.suppress(Exception):
                            pod = await self.core.read_namespaced_pod(name, ns)
                            uids[name] = pod.metadata.uid
                            return
                        await asyncio.sleep(1)
        await asyncio.gather(*(one(n) for n in names))
        return uids

    async def delete(self, ns: str, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(Exception):
                await self.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)

    async def pods(self, ns: str) -> list[Any]:
        return list((await self.core.list_namespaced_pod(ns)).items)

    def groups(self, emu: Emulator | None, node: str) -> list[Any]:
        e = emu or self.emu
        e.state.reap()
        return [g for g in e.state.groups.values() if dict(g.tags).get(TAG_NODE) == node]

    async def audit(self, ns: str, node: str, expected: dict[str, str],
                    emu: Emulator | None = None) -> dict[str, int]:
        """expected: pod name → UID of the pods that must still exist (we did not delete)."""
        pods = [p for p in await self.pods(ns) if p.metadata.deletion_timestamp is None]
        live = {p.metadata.uid for p in pods}
        uids = Counter(dict(g.tags).get(TAG_POD_UID) for g in self.groups(emu, node))
        now = {p.metadata.name: p.metadata.uid for p in pods}
        return {
            "pods": len(pods),
            "running": sum(p.status.phase == "Running" for p in pods),
            "duplicates": sum(c - 1 for c in uids.values() if c > 1),
            "orphans": sum(1 for u in uids if u not in live),
            "missing": sum(1 for n, u in expected.items() if now.get(n) != u),
        }

    async def converge(self, ns: str, node: str, expected: dict[str, str], within: float,
                       emu: Emulator | None = None) -> tuple[float | None, dict[str, int]]:
        start = time.monotonic()
        a: dict[str, int] = {}
        while time.monotonic() - start < within:
            with contextlib.suppress(Exception):
                a = await self.audit(ns, node, expected, emu)
                if (a["running"] == a["pods"] == len(expected) and a["duplicates"] == 0
                        and a["orphans"] == 0 and a["missing"] == 0):
                    return time.monotonic() - start, a
            await asyncio.sleep(0.5)
        return None, a


class ReadyWatch:
    def __init__(self, core: client.CoreV1Api, name: str) -> None:
        self.core, self.name, self.not_ready = core, name, 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                node = await self.core.read_node(self.name)
                ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
                if not ready or ready[0].status != "True":
                    self.not_ready += 1
            await asyncio.sleep(0.5)

    async def stop(self) -> str:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return "yes" if self.not_ready else "no"


def badness(r: list[str]) -> tuple[float, ...]:
    """Orders runs of one scenario, worst last: broken, not converged, faults counted (duplicate
    and orphan groups, pods wrongly deleted), pods short, converge time, failover time."""
    if len(r) < 9 or "/" not in r[2]:
        return (2.0,)
    done, total = (float(x) for x in r[2].split("/"))
    faults = sum(float(x) if x.isdigit() else 1e6 for x in r[3:6])
    converge = float(r[6]) if r[6].replace(".", "", 1).isdigit() else math.inf
    failover = float(r[7]) if r[7] not in ("-", "") else 0.0
    return (1.0 if converge == math.inf else 0.0, faults, total - done, converge, failover,
            float(r[8] == "yes"))


def row(name: str, fault: str, result: tuple[float | None, dict[str, int]], expected: int,
        failover: float | None = None, not_ready: str = "no") -> list[str]:
    seconds, a = result
    return [name, fault, f"{a.get('running', 0)}/{expected}", str(a.get("duplicates", "?")),
            str(a.get("orphans", "?")), str(a.get("missing", "?")),
            f"{seconds:.1f}" if seconds is not None else "**not converged**",
            f"{failover:.1f}" if failover is not None else "-", not_ready]


async def until(check: Callable[[], Awaitable[bool]], within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if await check():
                return True
        await asyncio.sleep(0.1)
    return False


async def ready_node(w: World, name: str, proc: NodeProcess) -> None:
    async def ready() -> bool:
        node = await w.core.read_node(name)
        return any(c.type == "Ready" and c.status == "True"
                   for c in node.status.conditions or [])
    if not await until(ready, 60):
        raise SystemExit(f"node {name} never Ready:\n{proc.logs()[-3000:]}")


# ---- scenarios -------------------------------------------------------------------------------

async def leader_sigkill(w: World, args: argparse.Namespace) -> list[str]:
    ns, name = await w.namespace(), f"chaos-ha-{uuid.uuid4().hex[:4]}"
    flags = {"node_leader_election": True, "node_leader_lease_namespace": ns,
             "node_leader_lease_name": f"lead-{name}"}
    a = await w.node(name, identity="a", **flags)
    await ready_node(w, name, a)
    await w.node(name, identity="b", **flags)
    await asyncio.sleep(2)
    watch = ReadyWatch(w.core, name)
    w.emu.faults.set_latency(0.2, "CreateContainerGroup")
    burst = asyncio.create_task(w.create(ns, name, [f"p{i}" for i in range(200)]))
    await until(lambda: asyncio.sleep(0, len(w.groups(None, name)) >= 50), 120)
    await a.kill()
    killed = time.monotonic()
    w.emu.faults.set_latency(0.0, "CreateContainerGroup")

    async def b_writes() -> bool:
        return any(m.manager == "vk-eci@b" for p in await w.pods(ns)
                   for m in p.metadata.managed_fields or [])
    failover = time.monotonic() - killed if await until(b_writes, 60) else None
    expected = await burst   # UIDs as created, not as listed after the fault
    result = await w.converge(ns, name, expected, 300)
    return row("leader-sigkill", "SIGKILL of the leader (of 2 replicas) mid-burst of 200",
               result, 200, failover, await watch.stop())


async def apiserver_restart(w: World, args: argparse.Namespace) -> list[str]:
    ns, name = await w.namespace(), f"chaos-api-{uuid.uuid4().hex[:4]}"
    node = await w.node(name)
    await ready_node(w, name, node)
    w.emu.faults.set_latency(0.2, "CreateContainerGroup")
    burst = asyncio.create_task(w.create(ns, name, [f"p{i}" for i in range(100)]))
    await until(lambda: asyncio.sleep(0, len(w.groups(None, name)) >= 30), 120)
    await asyncio.to_thread(cluster.restart, w.cp.dir, "kube-apiserver", down_for=5)
    w.emu.faults.set_latency(0.0, "CreateContainerGroup")
    expected = await burst
    result = await w.converge(ns, name, expected, 300)
    return row("apiserver-restart", "kube-apiserver down 5 s mid-burst of 100 (etcd kept)",
               result, 100)


async def watch_expiry(w: World, args: argparse.Namespace) -> list[str]:
    """Three API-server restarts, pods created and deleted around each: the node's pod watch
    resumes from a resourceVersion the restarted server's watch cache does not hold (410 Gone)
    and must relist, reporting what changed and what went in the gap."""
    ns, name = await w.namespace(), f"chaos-410-{uuid.uuid4().hex[:4]}"
    node = await w.node(name, **{"log-level": "info"})
    await ready_node(w, name, node)
    expected = await w.create(ns, name, [f"p{i}" for i in range(30)])
    await w.converge(ns, name, expected, 120)
    for round_ in range(3):
        expected |= await w.create(ns, name, [f"r{round_}-{i}" for i in range(10)])
        gone = [f"r{round_}-{i}" for i in range(3)] + [f"p{round_ * 3 + i}" for i in range(3)]
        await w.delete(ns, gone)
        for n in gone:
            expected.pop(n, None)
        await asyncio.to_thread(cluster.restart, w.cp.dir, "kube-apiserver", down_for=2)
        expected |= await w.create(ns, name, [f"s{round_}-{i}" for i in range(5)])
    result = await w.converge(ns, name, expected, 300)
    log = await asyncio.to_thread(node.logs)
    expired = log.count("pod watch expired")
    return row("watch-expiry", f"3 API-server restarts with churn (45 creates, 18 deletes); "
               f"410 Gone relists seen by the node: {expired}", result, len(expected))


async def eci_paused(w: World, args: argparse.Namespace) -> list[str]:
    ns, name = await w.namespace(), f"chaos-pause-{uuid.uuid4().hex[:4]}"
    node = await w.node(name)
    await ready_node(w, name, node)
    expected = await w.create(ns, name, [f"p{i}" for i in range(50)])
    await w.converge(ns, name, expected, 120)
    watch = ReadyWatch(w.core, name)
    w.emu.faults.pause("hang")
    expected |= await w.create(ns, name, [f"q{i}" for i in range(20)])
    await w.delete(ns, [f"p{i}" for i in range(10)])
    for i in range(10):
        expected.pop(f"p{i}", None)
    await asyncio.sleep(args.pause)
    w.emu.faults.resume()
    result = await w.converge(ns, name, expected, 300)
    return row("eci-paused", f"ECI hangs every request for {args.pause:.0f} s (20 creates, "
               "10 deletes meanwhile)", result, 60, None, await watch.stop())


async def eci_storm(w: World, args: argparse.Namespace) -> list[str]:
    ns, name = await w.namespace(), f"chaos-storm-{uuid.uuid4().hex[:4]}"
    node = await w.node(name)
    await ready_node(w, name, node)
    expected = await w.create(ns, name, [f"p{i}" for i in range(20)])
    await w.converge(ns, name, expected, 120)
    w.emu.faults.throttle("*", rate=0.2)
    w.emu.faults.server_error("*", rate=0.05)
    w.emu.faults.set_latency(0.3)
    end = time.monotonic() + args.storm
    created = 0
    while time.monotonic() < end:
        expected |= await w.create(ns, name, [f"s{created + i}" for i in range(6)])
        created += 6
        gone = [f"s{created - 6}", f"s{created - 5}"]
        await w.delete(ns, gone)
        for n in gone:
            expected.pop(n, None)
        await asyncio.sleep(max(0.0, min(args.storm / 10, end - time.monotonic())))
    w.emu.faults.clear()
    result = await w.converge(ns, name, expected, 300)
    return row("eci-storm", f"20% Throttling.User + 5% 5xx + 300 ms on every action for "
               f"{args.storm:.0f} s ({created} creates, {created // 3} deletes)", result,
               len(expected))


async def clock_skew(w: World, args: argparse.Namespace, offset: float) -> list[str]:
    ns, name = await w.namespace(), f"chaos-skew-{uuid.uuid4().hex[:4]}"
    async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                        time_scale=0.01, clock=SkewedClock(offset)) as emu:
        node = await w.node(name, emu=emu)
        await ready_node(w, name, node)
        expected = await w.create(ns, name, [f"p{i}" for i in range(50)])
        await w.delete(ns, [f"p{i}" for i in range(5)])
        expected = {n: u for n, u in expected.items() if int(n[1:]) >= 5}
        result = await w.converge(ns, name, expected, 300, emu)
        await node.stop()
    sign = "+" if offset > 0 else "-"
    return row(f"clock-skew{sign}{abs(offset):.0f}", f"ECI's clock {abs(offset):.0f} s "
               f"{'ahead of' if offset > 0 else 'behind'} the node's (50 creates, 5 deletes)",
               result, 45)


async def duplicate_node(w: World, args: argparse.Namespace) -> list[str]:
    ns, name = await w.namespace(), f"chaos-dup-{uuid.uuid4().hex[:4]}"
    a = await w.node(name, identity="first")
    await ready_node(w, name, a)
    expected = await w.create(ns, name, [f"p{i}" for i in range(10)])
    started = time.monotonic()
    b = await w.node(name, identity="second")
    assert b.proc is not None
    code = await asyncio.wait_for(b.proc.wait(), 60)
    refused = time.monotonic() - started
    result = await w.converge(ns, name, expected, 120)
    r = row("duplicate-node", f"a second unelected process for the node: exit {code} after "
            f"{refused:.1f} s", result, 10)
    return r


SCENARIOS: dict[str, Callable[[World, argparse.Namespace], Awaitable[list[str]]]] = {
    "leader-sigkill": leader_sigkill,
    "apiserver-restart": apiserver_restart,
    "watch-expiry": watch_expiry,
    "eci-paused": eci_paused,
    "eci-storm": eci_storm,
    "clock-skew+120": lambda w, a: clock_skew(w, a, 120.0),
    "clock-skew-120": lambda w, a: clock_skew(w, a, -120.0),
    "duplicate-node": duplicate_node,
}


async def run(args: argparse.Namespace, rep: Report) -> list[list[str]]:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="vk-chaos-"))
    cp = await asyncio.to_thread(cluster.up, directory)
    rows: list[list[str]] = []
    try:
        configuration = client.Configuration()
        await config.load_kube_config(config_file=str(cp.kubeconfig),
                                      client_configuration=configuration)
        async with client.ApiClient(configuration) as api, Emulator(
                access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                time_scale=0.01) as emu:
            w = World(cp, emu, client.CoreV1Api(api), directory)
            for name in args.only or list(SCENARIOS):
                runs: list[list[str]] = []
                for attempt in range(args.repeat):
                    runs.append(await _once(w, emu, name, args))
                    print(f"# {name} run {attempt + 1}/{args.repeat}: {runs[-1]}",
                          file=sys.stderr)
                worst = max(range(len(runs)), key=lambda i: badness(runs[i]))
                rows.append([*runs[worst][:len(HEADS) - 1],
                             f"worst of {len(runs)} (run {worst + 1})"])
    finally:
        await asyncio.to_thread(cluster.down, directory)
    return rows


async def _once(w: World, emu: Emulator, name: str, args: argparse.Namespace) -> list[str]:
    t0 = time.monotonic()
    try:
        return await asyncio.wait_for(SCENARIOS[name](w, args), 900)
    except Exception as e:  # a scenario that breaks is a figure too
        return [name, f"**scenario failed: {type(e).__name__}: {e}**",
                *["-"] * (len(HEADS) - 3)]
    finally:
        emu.faults.clear()
        for proc in w.procs:
            await proc.stop()
        w.procs.clear()
        print(f"# {name}: {time.monotonic() - t0:.0f} s", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short fault windows (smoke run)")
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS))
    ap.add_argument("--pause", type=float, help="seconds ECI hangs (default 120; quick 20)")
    ap.add_argument("--storm", type=float, help="seconds of the error storm (default 300; "
                    "quick 30)")
    ap.add_argument("--dir", default=None, help="control-plane state directory")
    ap.add_argument("--repeat", type=int, help="runs of each scenario, the worst reported "
                    "(default 3; quick 1)")
    args = ap.parse_args()
    args.repeat = max(1, args.repeat or (1 if args.quick else 3))
    args.pause = args.pause or (20.0 if args.quick else 120.0)
    args.storm = args.storm or (30.0 if args.quick else 300.0)
    random.seed(1)
    rep = Report("bench_chaos" + ("_quick" if args.quick else ""), __doc__)
    rep.text("Emulator in-process at time scale 0.01 with ECI's documented rate limits; node "
             "flags as the integration tests (lease renew 2 s, status poll 1 s). Converge time "
             "is from the end of the fault; failover is SIGKILL → first pod-status write by "
             f"the standby. The pods that must exist are fixed as the faults happen (the UIDs "
             f"the API server gave our creates, less the pods we deleted), never read from a "
             f"listing after a fault, so a pod the node wrongly deleted counts. Each scenario "
             f"ran {args.repeat} time(s); its row is the worst run (not converged, then faults, "
             f"then pods short, then time).")
    rows = asyncio.run(run(args, rep))
    rep.table(HEADS, rows)
    for r in rows:
        if len(r) == len(HEADS) and "/" in r[2]:
            done, total = r[2].split("/")
            rep.goal(f"{r[0]}: pods converged", float(done), ">=", float(total), "pods")
            for i, what in ((3, "duplicate groups"), (4, "orphan groups"),
                            (5, "pods wrongly deleted")):
                if r[i].isdigit():
                    rep.goal(f"{r[0]}: {what}", float(r[i]), "==", 0)
            if r[0] == "leader-sigkill" and r[7] != "-":
                rep.goal("leader-sigkill: failover (status writes resume)", float(r[7]), "<=",
                         15, "s")
                rep.goal("leader-sigkill: node never NotReady", float(r[8] == "yes"), "==", 0)
        else:
            rep.goal(f"{r[0]}: scenario ran", 0, "==", 1)
    rep.finish()


if __name__ == "__main__":
    main()
