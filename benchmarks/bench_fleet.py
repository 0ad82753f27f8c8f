"""A fleet of virtual nodes of one ECI account in one cluster: the shared account budget and
the fleet's throughput, latency and cost (docs/RELIABILITY.md "One account budget").

A local control plane, one ECI emulator in its own process (``vk-eci emulator``, time scale
0.001), N ``vk-eci run`` processes (default 5) of one account, each its own Node, sharing the
account's limits through member Leases (the default). Runs:

- **(a) burst at ECI's limits**: every node gets ``--pods-per-node`` pods at once (default 300:
  1,500 creates, more than the account's 1,000 a minute). Figures: Throttling answers (goal
  0), the account's peak calls per minute per action (all nodes together, sliding 60 s window
  over 5 s samples of each node's ``vk_eci_eci_api_requests_total``) against ECI's limit, and
  the fleet's pods/s against **one node alone** given the same pods (goal: the fleet no slower
  than 0.8x one node; both are bounded by the account's limit).
- **(b) at scale, limits raised** (as Alibaba raises them on request; ``--scale-pods``,
  default 50,000, 0 to skip): the emulator's and the nodes' limits raised to 100,000 a minute;
  time to all Running, status lag p50/p99 (the emulator's exact Running time to the pod watch,
  goal p99 <= 2 s), node CPU s per 1,000 pods and peak RSS (worst node), API-server requests
  per pod (``apiserver_request_total``).
- **(c) a member SIGKILLed mid-burst** (``--no-kill`` skips): node 0 runs with a hot standby
  (two replicas electing a leader); its leader is SIGKILLed halfway through the burst of (a).
  Figures: Throttling answers (goal 0) and its pods converging on its standby.

Bounded: each run at ECI's limits within ``--timeout``, the whole benchmark within
``--time-limit`` (default 2 h): a run cut by it reports what it reached (pods not Running, goals
marked missed), one not started is a row of nothing reached. Progress (created, Running,
throttled) is printed every 10 s. Pods are created by 64 concurrent workers straight through
the API server (no Deployments: the controller-manager's client would pace them at its own
QPS), retried on 429/5xx. Nodes, pods and the emulator are removed after each run. Writes
``benchmarks/results/bench_fleet.md``. Usage: ``python3 benchmarks/bench_fleet.py [--nodes 5]
[--pods-per-node 300] [--pods 50000] [--no-burst] [--no-kill] [--time-limit 7200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_node import Emulator, clients, fresh_namespace, pod_body
from benchmarks.bench_status import Watcher, lags, metrics, quantile, transitions, wait_for
from benchmarks.procstat import proc_stat
from benchmarks.report import Report
from tests.fixtures.node import NodeProcess, free_port, node_command, node_env
from vk_eci.controlplane import cluster
from vk_eci.emulator.ratelimit import DEFAULT_LIMITS

IN_FLIGHT = 64
SAMPLE_EVERY = 5.0
PROGRESS_EVERY = 10.0
SHARING_WITHIN = 180.0  # seconds for every member to be counted before a run starts
RAISED = 100_000
RAISED_ACTIONS = ("CreateContainerGroup", "DescribeContainerGroups",
                  "DescribeContainerGroupStatus", "DeleteContainerGroup",
                  "DescribeContainerGroupEvents")


def emulator(time_scale: float, raised: bool) -> Emulator:
    """``vk-eci emulator`` in its own process; ``raised``: the account's limits raised."""
    return Emulator(time_scale, True, tuple(f"{a}={RAISED}" for a in RAISED_ACTIONS)
                    if raised else ())


@dataclass
class Run:
    label: str
    nodes: int
    pods: int
    running: int = 0
    seconds: float = 0.0
    lag_p50: float = float("nan")
    lag_p99: float = float("nan")
    node_lag_p50: float = float("nan")  # the nodes' own histograms, all nodes together
    node_lag_p99: float = float("nan")
    throttled: float = 0.0
    peak_per_minute: Counter[str] = field(default_factory=Counter)
    cpu_per_1000: float = 0.0  # worst node
    rss_mib: float = 0.0  # worst process
    apiserver_per_pod: float = float("nan")
    killed_converged: str = "-"

    @property
    def pods_per_s(self) -> float:
        return self.running / self.seconds if self.seconds else 0.0


@dataclass
class Member:
    node: str
    proc: NodeProcess
    last: dict[tuple[str, str], float] = field(default_factory=dict)
    cpu0: float = 0.0


def calls_by_action(sample: dict[tuple[str, str], float]) -> Counter[str]:
    out: Counter[str] = Counter()  # values are floats: the samples' counts
    for (name, labels), value in sample.items():
        if name == "vk_eci_eci_api_requests_total":
            parts = dict(p.split("=", 1) for p in labels.split(","))
            out[parts["action"].strip('"')] += round(value)
            if 'code="Throttling' in labels:
                out["(throttled)"] += round(value)
    return out


def histogram_quantile(samples: list[dict[tuple[str, str], float]], name: str, label: str,
                       q: float) -> float:
    """The ``q`` quantile of histogram ``name`` (series carrying ``label``) summed over the
    given scrapes, interpolated linearly within its bucket as Prometheus does; +inf when it
    falls in the last, open bucket."""
    buckets: Counter[float] = Counter()
    for sample in samples:
        for (metric, labels), value in sample.items():
            if metric == f"{name}_bucket" and label in labels:
                le = dict(p.split("=", 1) for p in labels.split(","))["le"].strip('"')
                buckets[float(le)] += value
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] == 0:
        return float("nan")
    rank, below, lower = q * buckets[edges[-1]], 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return edge
            share = (rank - below) / max(buckets[edge] - below, 1e-9)
            return lower + (edge - lower) * share
        below, lower = buckets[edge], edge
    return float("nan")


def apiserver_requests(cp: cluster.ControlPlane) -> float:
    text = cp.kubectl("get", "--raw", "/metrics").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("apiserver_request_total{"))


async def fleet_run(label: str, cp: cluster.ControlPlane, api: client.ApiClient,
                    emu: Emulator, http: aiohttp.ClientSession, *, nodes: int,
                    pods_per_node: int, deadline: float, kill: bool = False) -> Run:
    """One run, bounded by ``deadline`` (monotonic): what was reached by then is reported
    (pods not Running count as missed), never a run without figures."""
    run = Run(label, nodes, nodes * pods_per_node)
    core = client.CoreV1Api(api)
    ns = await fresh_namespace(core, "fleet")
    # Underscored like the test fixture's own flags (one spelling: a dashed key was once not
    # seen by the fixture, which then turned sharing off and the run waited for shares forever).
    flags: dict[str, Any] = {"status_sync_interval": "5", "pod_workers": "32",
                             "lease_renew_interval": "10", "log_level": "warning",
                             "eci_account_lease_namespace": ns}
    if emu.raised:  # the account's raised limits are the nodes' too
        flags["eci_rate_limits"] = ",".join(f"{a}={RAISED}" for a in RAISED_ACTIONS)
    names = [f"fleet-{uuid.uuid4().hex[:4]}-{i}" for i in range(nodes)]
    members: list[Member] = []
    for i, name in enumerate(names):
        replicas = 2 if kill and i == 0 else 1
        for r in range(replicas):
            extra = dict(flags)
            if replicas > 1:
                extra.update({"node_leader_election": True, "node_leader_lease_namespace": ns,
                              "node_leader_lease_name": f"lead-{name}",
                              "identity": f"{name}-r{r}"})
            port = free_port()
            proc = NodeProcess(name=name, argv=node_command(cp.kubeconfig, emu.endpoint, name,
                                                            port, **extra),
                               env=node_env(), log_path=Path(tempfile.mkstemp(
                                   prefix=f"{name}-r{r}-", suffix=".log")[1]),
                               metrics_port=port)
            await proc.start()
            members.append(Member(name, proc))
    watcher = Watcher(api, namespace=ns)
    samples: list[tuple[float, Counter[str]]] = []
    background: list[asyncio.Task[None]] = []
    try:
        async def sample_all() -> Counter[str]:
            total: Counter[str] = Counter()
            for m in members:
                if m.proc.running:
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        m.last = await metrics(m.proc.metrics_port)
                total.update(calls_by_action(m.last))  # a killed member's last word counts
            return total

        async def all_sharing() -> bool:
            # Every member counted (a share above 0) and the account shared out whole: equal
            # shares for the nodes, a small one for a hot standby (docs/RELIABILITY.md).
            await sample_all()
            shares = [m.last.get(("vk_eci_fleet_share", ""), 0.0) for m in members]
            return all(s > 0 for s in shares) and abs(sum(shares) - 1) < 1e-2

        if not await wait_for(f"{label}: every member at its share", all_sharing,
                              min(deadline, time.monotonic() + SHARING_WITHIN), 0.5):
            raise TimeoutError(f"{label}: members not sharing (see the nodes' logs: "
                               f"{', '.join(str(m.proc.log_path) for m in members)})")
        for m in members:
            assert m.proc.proc is not None
            m.cpu0 = proc_stat(m.proc.proc.pid).cpu_seconds

        async def sample_loop() -> None:
            while True:
                samples.append((time.monotonic(), await sample_all()))
                await asyncio.sleep(SAMPLE_EVERY)

        api0 = await asyncio.to_thread(apiserver_requests, cp)
        watcher.start()
        background.append(asyncio.create_task(sample_loop()))
        await asyncio.sleep(0.5)
        pods = [(f"p{i}-{k}", name) for i in range(pods_per_node)
                for k, name in enumerate(names)]
        created = Progress(label, len(pods), watcher, samples)
        background.append(asyncio.create_task(created.report()))

        async def killer() -> None:
            if kill:
                await created.half.wait()
                leader = await leader_of(members, names[0])
                if leader is not None:
                    print(f"# {label}: SIGKILL {leader.proc.log_path}", file=sys.stderr)
                    await leader.proc.kill()

        background.append(asyncio.create_task(killer()))
        first = time.time()
        await create_pods(core, ns, pods, deadline, created)

        async def all_running() -> bool:
            return created.running() >= len(pods)

        await wait_for(f"{label}: {len(pods)} pods Running", all_running, deadline, 1.0)
        seen = {k: v["Running"] for k, v in watcher.seen.items() if "Running" in v}
        run.running = len(seen)
        run.seconds = (max(seen.values()) - first) if seen else 0.0
        exact: dict[str, dict[str, Any]] = {}
        try:  # a loaded emulator may not answer: the lag is then unknown, the rest stands
            exact = await asyncio.wait_for(transitions(http, emu.endpoint), 120)
        except (TimeoutError, aiohttp.ClientError) as e:
            print(f"# {label}: the emulator's transitions unread: {e!r}", file=sys.stderr)
        lag = lags([p for p, _ in pods], watcher.seen, exact, "Running", "running",
                   namespace=ns)
        run.lag_p50, run.lag_p99 = quantile(lag, 0.5), quantile(lag, 0.99)
        # The nodes' own view (ECI's transition to their status write): the lag above adds
        # the API server's and this script's watch delay, both on the same machine.
        await sample_all()
        scrapes = [m.last for m in members]
        run.node_lag_p50, run.node_lag_p99 = (histogram_quantile(
            scrapes, "vk_eci_pod_status_lag_seconds", 'phase="Running"', q) for q in (0.5, 0.99))
        run.apiserver_per_pod = (await asyncio.to_thread(apiserver_requests, cp) - api0) / \
            max(1, created.created)
        samples.append((time.monotonic(), await sample_all()))
        for node in names:
            own = [m for m in members if m.node == node and m.proc.running]
            cpu = sum(proc_stat(m.proc.proc.pid).cpu_seconds - m.cpu0 for m in own
                      if m.proc.proc is not None)
            mine = sum(1 for p, n in pods if n == node and p in seen)
            run.cpu_per_1000 = max(run.cpu_per_1000, cpu / max(1, mine) * 1000)
        run.rss_mib = max(proc_stat(m.proc.proc.pid).peak_rss for m in members
                          if m.proc.running and m.proc.proc is not None) / 2**20
        run.throttled = samples[-1][1]["(throttled)"]
        run.peak_per_minute = peak_minute(samples)
        if kill:
            mine = sum(1 for p, n in pods if n == names[0] and p in seen)
            run.killed_converged = f"{mine}/{pods_per_node}"
        return run
    finally:
        for task in background:
            task.cancel()
        if watcher.task is not None:
            watcher.task.cancel()
        # The nodes first, together: with no node left to delete groups, the namespace's
        # pods go at once (the emulator, and with it the groups, ends with the run). Deleting
        # tens of thousands of pods through their nodes first took minutes.
        await asyncio.gather(*(m.proc.stop() for m in members))
        with contextlib.suppress(Exception):
            await core.delete_namespace(ns, grace_period_seconds=0)
        for name in names:
            with contextlib.suppress(Exception):
                await core.delete_node(name)


@dataclass
class Progress:
    """Pods created so far, printed with those Running every ``PROGRESS_EVERY`` seconds."""

    label: str
    total: int
    watcher: Watcher
    samples: list[tuple[float, Counter[str]]]
    created: int = 0
    failed: int = 0
    half: asyncio.Event = field(default_factory=asyncio.Event)

    def running(self) -> int:
        return sum(1 for v in self.watcher.seen.values() if "Running" in v)

    def add(self) -> None:
        self.created += 1
        if self.created * 2 >= self.total:
            self.half.set()

    async def report(self) -> None:
        start = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            calls = self.samples[-1][1] if self.samples else Counter()
            print(f"# {self.label}: {time.monotonic() - start:.0f}s created "
                  f"{self.created:,}/{self.total:,} (failed {self.failed}), Running "
                  f"{self.running():,}, throttled {calls['(throttled)']}", file=sys.stderr,
                  flush=True)


async def create_pods(core: client.CoreV1Api, ns: str, pods: list[tuple[str, str]],
                      deadline: float, progress: Progress) -> None:
    """``IN_FLIGHT`` workers create the pods (no response models: at 50,000 pods parsing them
    would cost this script more CPU than the API server spends), retrying an API server that
    answers 429/5xx or not at all, and stopping at the deadline (the rest are missed)."""
    todo = iter(pods)

    async def worker() -> None:
        for pod, node in todo:
            for attempt in range(5):
                if time.monotonic() >= deadline:
                    return
                try:
                    resp: Any = await core.create_namespaced_pod(
                        ns, pod_body(pod, node), _preload_content=False)
                    resp.release()
                    progress.add()
                    break
                except ApiException as e:
                    if e.status == 409:  # an earlier attempt landed
                        progress.add()
                        break
                    if e.status != 429 and e.status < 500:
                        raise
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.5 * 2 ** attempt)
            else:
                progress.failed += 1

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    if time.monotonic() >= deadline:
        print(f"# {progress.label}: the time limit stopped pod creation at "
              f"{progress.created:,}/{len(pods):,} (MISSED)", file=sys.stderr)


async def leader_of(members: list[Member], node: str) -> Member | None:
    """The replica of ``node`` that writes its pod statuses (its status sync cycles run)."""
    for m in members:
        if m.node == node and m.proc.running:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                sample = await metrics(m.proc.metrics_port)
                if sample.get(("vk_eci_pod_status_sync_cycles_total", ""), 0.0) > 0:
                    return m
    return None


def peak_minute(samples: list[tuple[float, Counter[str]]]) -> Counter[str]:
    """The most calls of each action in any window of at most 60 s between two samples."""
    peak: Counter[str] = Counter()
    for i, (t, total) in enumerate(samples):
        base = next((c for s, c in reversed(samples[:i + 1]) if t - s >= 60.0), samples[0][1])
        for action, value in total.items():
            peak[action] = max(peak[action], round(value - base.get(action, 0.0)))
    return peak


def row(r: Run, alone: Run | None) -> list[str]:
    ratio = f"{r.pods_per_s / alone.pods_per_s:.2f}" if alone and alone.pods_per_s else "-"
    return [r.label, str(r.nodes), f"{r.running}/{r.pods}", f"{r.seconds:.0f}",
            f"{r.pods_per_s:.1f}", ratio, f"{r.lag_p50:.2f}", f"{r.lag_p99:.2f}",
            f"{r.node_lag_p50:.2f} / {r.node_lag_p99:.2f}",
            f"{r.throttled:.0f}", f"{r.cpu_per_1000:.1f}", f"{r.rss_mib:.0f}",
            f"{r.apiserver_per_pod:.1f}", r.killed_converged]


async def bench(args: argparse.Namespace, rep: Report) -> None:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="vk-bench-fleet-"))
    end = time.monotonic() + args.time_limit  # the whole benchmark's hard limit
    cp = await asyncio.to_thread(cluster.up, directory)
    rows: list[list[str]] = []
    limits: list[list[str]] = []

    async def attempt(label: str, raised: bool, nodes: int, per_node: int, *, within: float,
                      kill: bool = False) -> Run:
        """A run bounded by its own ``within`` and the benchmark's limit; one not started or
        not ready in time is a row of nothing reached (its goals are then missed)."""
        if time.monotonic() >= end:
            print(f"# {label}: not run, the time limit was reached (MISSED)", file=sys.stderr)
            return Run(label + " (not run: time limit)", nodes, nodes * per_node)
        async with emulator(args.time_scale, raised) as emu:
            try:
                return await fleet_run(label, cp, api, emu, http, nodes=nodes,
                                       pods_per_node=per_node, kill=kill,
                                       deadline=min(end, time.monotonic() + within))
            except TimeoutError as e:
                print(f"# {label}: {e} (MISSED)", file=sys.stderr)
                return Run(label + " (not ready)", nodes, nodes * per_node)

    try:
        async with clients(cp.kubeconfig) as (api, http):
            if args.burst:
                total = args.nodes * args.pods_per_node
                alone = await attempt("(a) one node alone, ECI's limits", False, 1, total,
                                      within=args.timeout)
                fleet = await attempt("(a) fleet burst, ECI's limits", False, args.nodes,
                                      args.pods_per_node, within=args.timeout)
                rows += [row(alone, None), row(fleet, alone)]
                print(f"# {rows[-2]}\n# {rows[-1]}", file=sys.stderr)
                for action, peak in sorted(fleet.peak_per_minute.items()):
                    limit = DEFAULT_LIMITS.get(action)
                    if not action.startswith("("):
                        limits.append([action, f"{peak:,}", f"{limit:,}" if limit else "6,000",
                                       f"{peak / (limit or 6000):.2f}"])
                rep.goal(f"Throttling answers, {args.nodes} nodes bursting at ECI's limits",
                         fleet.throttled, "==", 0)
                rep.goal("pods Running, fleet burst", fleet.running, "==", fleet.pods)
                rep.goal("fleet pods/s / one node alone at ECI's limits",
                         fleet.pods_per_s / max(alone.pods_per_s, 1e-9), ">=", 0.8, "x")
                if args.kill:
                    killed = await attempt("(c) node 0's leader SIGKILLed mid-burst", False,
                                           args.nodes, args.pods_per_node, within=args.timeout,
                                           kill=True)
                    rows.append(row(killed, alone))
                    print(f"# {rows[-1]}", file=sys.stderr)
                    rep.goal("Throttling answers with a member SIGKILLed mid-burst",
                             killed.throttled, "==", 0)
                    rep.goal("pods Running with a member SIGKILLed mid-burst", killed.running,
                             "==", killed.pods)
            if args.pods:
                per_node = max(1, args.pods // args.nodes)
                scale = await attempt(f"(b) {per_node * args.nodes:,} pods, limits raised",
                                      True, args.nodes, per_node, within=args.time_limit)
                rows.append(row(scale, None))
                print(f"# {rows[-1]}", file=sys.stderr)
                rep.goal("pods Running at scale", scale.running, "==", scale.pods)
                rep.goal("status lag p99 at scale", scale.lag_p99, "<=", 2.0, "s")
    finally:
        await asyncio.to_thread(cluster.down, directory)
    rep.table(["run", "nodes", "Running", "seconds", "pods/s", "pods/s / one node alone",
               "status lag p50 s", "status lag p99 s",
               "nodes' own status lag p50 / p99 s (their histograms)", "throttled",
               "node CPU s per 1,000 pods (worst node)", "peak RSS MiB (worst process)",
               "API-server requests per pod", "killed node's pods Running"], rows,
              title="Fleet runs (a fresh emulator each)")
    rep.table(["action", "account calls in the peak minute", "ECI's limit", "of the limit"],
              limits, title="(a) the account's calls per minute, all nodes together")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--pods-per-node", type=int, default=300)
    ap.add_argument("--pods", "--scale-pods", dest="pods", type=int, default=50_000,
                    help="pods across the fleet with raised limits, run (b) (0: skip)")
    ap.add_argument("--no-burst", dest="burst", action="store_false",
                    help="skip the runs at ECI's limits, (a) and (c)")
    ap.add_argument("--no-kill", dest="kill", action="store_false",
                    help="skip the run with a member SIGKILLed mid-burst, (c)")
    ap.add_argument("--time-scale", type=float, default=0.001)
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds for each run at ECI's limits, (a) and (c)")
    ap.add_argument("--time-limit", type=float, default=7200.0,
                    help="seconds for the whole benchmark: a run cut by it reports what it "
                         "reached, the rest marked missed")
    ap.add_argument("--dir", default=None, help="control-plane state directory")
    args = ap.parse_args()
    if not (1 <= args.nodes <= 20 and 1 <= args.pods_per_node <= 5000
            and 0 <= args.pods <= 50_000):
        ap.error("a bounded benchmark: 1-20 nodes, 1-5,000 pods per node, at most 50,000 "
                 "pods at scale")
    rep = Report("bench_fleet", __doc__)
    rep.text(f"{args.nodes} nodes of one account, emulator time scale {args.time_scale}, "
             f"{IN_FLIGHT} pod creates in flight on the API server. One node alone is given "
             "the fleet's pods. Calls per minute: the nodes' own counts, sampled every "
             f"{SAMPLE_EVERY:.0f} s.")
    # SIGTERM as Ctrl-C: the run is cancelled and its control plane, emulator and nodes are
    # stopped by the blocks that started them (by default SIGTERM ends Python at once and
    # leaves all of them running).
    signal.signal(signal.SIGTERM, _interrupt)
    asyncio.run(bench(args, rep))
    rep.finish()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
