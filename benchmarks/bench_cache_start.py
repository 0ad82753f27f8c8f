"""What an image cache buys a pod, and what the node adds on top of ECI.

0. The headline: the node's own overhead on top of ECI, with and without a cache. A real local
   control plane, the ECI emulator (real clock, ``--time-scale``, its rate limits ON) and
   ``vk-eci run`` as a subprocess at its default status settings; ``--pods`` pods of the Flink
   image are started one by one without a cache, then as many with an image cache (automatic
   match). For each pod: Kubernetes-visible Running (a pod watch) minus ECI Running (the
   emulator's exact time) -- how late the node makes Kubernetes learn it -- and ECI's create
   minus the ``create`` call to the API server -- what the node takes to ask ECI. ECI's own
   start (its create to Running) is the emulator's model of ECI, shown at ECI's pace for
   reference, never as a figure of ours.
1. Start time of a pod of the Flink images (386.26 MB) on the ECI emulator with its manual
   clock at time scale 1 (so the figures are the modelled seconds, and the run takes a second or
   two of real time): created without a cache, then with a cache that became Ready after the
   node's last listing, chosen automatically. The request is the product's own: the node's
   ``PodCacheChooser`` decides (re-listing the caches as it does in the node) and
   ``translate.pod_to_request`` builds the ``CreateContainerGroup`` from that decision.
   ECI documents 50 s vs 5 s.
2. The node's own added latency per pod for the choice (annotations, index lookup, pull-policy
   plan, events): ``decide_for_pod`` over a catalog of N caches whose listing is fresh (the
   usual pod), p50/p99, against the baseline of a pod that asks for no cache, measured in the
   same run; and the cost of the occasional re-listing (at most one per minimum listing age,
   shared by every pod that arrives meanwhile): parsing and applying a listing of N caches.

Usage: python benchmarks/bench_cache_start.py [--start-pods 10] [--caches 1000,10000]
[--pods 2000]. Writes benchmarks/results/bench_cache_start.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from alibabacloud_eci20180808.models import DescribeImageCachesResponseBodyImageCaches
from kubernetes_asyncio.client import (
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import Report
from vk_eci.cloud.api import naming
from vk_eci.cloud.caches.annotations import AUTO_KEY
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.cloud.caches.decider import PodCacheChooser
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.provider_state import ProviderSettings
from vk_eci.cloud.translation.pod import pod_to_request
from vk_eci.metrics import Metrics

FLINK_IMAGES = ["registry.cn-hangzhou.aliyuncs.com/eci_open/flink:1.13"]
NOW = 1_704_067_200.0


class _Listing:
    """The catalog's one ECI call, answered from memory with the SDK's own response models
    (so that a re-listing costs what parsing and applying ECI's answer costs)."""

    def __init__(self) -> None:
        self.models: list[Any] = []
        self.calls = 0

    async def describe_image_caches(self, *, ids: Any = None) -> list[Any]:
        self.calls += 1
        if ids is None:
            return list(self.models)
        return [m for m in self.models if m.image_cache_id in ids]


class _Events:
    """An ``EventRecorder`` (our protocol) that keeps the events the chooser emits."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def record(self, pod: object, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod(i: int, images: list[str], annotations: dict[str, str]) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name=f"p{i}", namespace="bench", uid=f"uid-{i}",
                                       annotations=annotations),
                 spec=V1PodSpec(restart_policy="Always", containers=[
                     V1Container(name=f"c{j}", image=img, image_pull_policy="Always",
                                 resources=V1ResourceRequirements(
                                     requests={"cpu": "2", "memory": "4Gi"}))
                     for j, img in enumerate(images)]))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_match_latency(n_caches: int, n_pods: int, seed: int = 7) -> dict[str, float]:
    """decide_for_pod p50/p99 (µs) for auto-matching pods and for pods asking for nothing."""
    rng = random.Random(seed)
    vocab = [f"registry.example.com/team{i % 97}/app{i}:v{i % 13}" for i in range(20_000)]
    weights = [1.0 / (r + 1) for r in range(len(vocab))]  # Zipf-like popularity
    listing = _Listing()
    # The monotonic clock stands still: the listing stays fresh, as for all but the one pod
    # per minimum listing age that re-lists (timed separately below).
    catalog = CacheCatalog(listing, clock=lambda: NOW, monotonic=lambda: 0.0)
    for c in range(n_caches):
        images = list(dict.fromkeys(rng.choices(vocab, weights, k=rng.randint(1, 20))))
        listing.models.append(DescribeImageCachesResponseBodyImageCaches(
            image_cache_id=f"imc-{c:08d}", image_cache_name=f"c{c}", images=images,
            image_cache_size=rng.choice([20, 30, 50, 100]), status="Ready", progress="100%",
            creation_time=_iso(NOW - rng.uniform(0, 86_400 * 30))))
    t0 = time.perf_counter()
    await catalog.sync()
    first_listing_s = time.perf_counter() - t0
    pods = [_pod(i, rng.choices(vocab, weights, k=rng.randint(1, 10)), {AUTO_KEY: "true"})
            for i in range(n_pods)]
    plain = [_pod(i, [vocab[i % 100]], {}) for i in range(n_pods)]
    metrics = Metrics()
    for pod in pods[:50]:  # warm the normalisation cache and code paths before timing
        await decide_for_pod(pod, catalog, now=NOW)
    gc.collect()
    out: dict[str, float] = {}
    for label, batch in (("auto", pods), ("none", plain)):
        times: list[float] = []
        for pod in batch:
            t0 = time.perf_counter()
            await decide_for_pod(pod, catalog, metrics=metrics, now=NOW)
            times.append(time.perf_counter() - t0)
        out[f"{label}_p50_us"] = _percentile(times, 0.50) * 1e6
        out[f"{label}_p99_us"] = _percentile(times, 0.99) * 1e6
        out[f"{label}_mean_us"] = statistics.fmean(times) * 1e6
    hits = metrics.registry.get_sample_value(
        "vk_eci_image_cache_lookups_total", {"mode": "auto", "result": "hit"}) or 0.0
    partial = metrics.registry.get_sample_value(
        "vk_eci_image_cache_lookups_total", {"mode": "auto", "result": "partial"}) or 0.0
    out["hit_or_partial_share"] = (hits + partial) / n_pods
    assert listing.calls == 1, "the timed decisions must not have re-listed"
    # A re-listing: ECI's answer parsed and compared with the catalog (one changed cache).
    relist: list[float] = []
    for k in range(5):
        listing.models[k].image_cache_size = 200 + k  # ECI's answer, not ours
        t0 = time.perf_counter()
        await catalog.sync()
        relist.append(time.perf_counter() - t0)
    out["first_listing_ms"] = first_listing_s * 1e3
    out["relist_ms"] = statistics.median(relist) * 1e3
    return out


async def _start_seconds(client: Any, chooser: PodCacheChooser, settings: ProviderSettings,
                         clock: Any, i: int, annotations: dict[str, str]) -> tuple[float, str]:
    """Emulated seconds from CreateContainerGroup to Running, and the cache result."""
    pod = _pod(i, FLINK_IMAGES, annotations)
    # The provider's path: the chooser decides (raising if the pod must wait), translation
    # builds the request from the pod and that decision.
    decision = await chooser.before_create(pod)
    req = pod_to_request(pod, replace(settings.base_context(), cache=decision.to_context()))
    container = req.container[0]
    print(f"  sent: ImageSnapshotId={req.image_snapshot_id} "
          f"AutoMatchImageCache={req.auto_match_image_cache} "
          f"ImagePullPolicy={container.image_pull_policy} Cpu={req.cpu} Memory={req.memory}")
    started = clock.now()
    group_id = await client.create_container_group(req)
    while clock.now() - started < 600:
        [group] = await client.describe_container_groups(ids=[group_id])
        if group.status == "Running":
            return clock.now() - started, decision.result or "none"
        clock.advance(0.1)  # so figures are to +0.1 s
    raise RuntimeError(f"pod {i} not Running after 600 emulated seconds")


async def bench_start() -> dict[str, float]:
    """Flink pod start, without and with a cache, on the emulator's manual clock (scale 1)."""
    from alibabacloud_eci20180808 import models as eci

    from vk_eci.cloud.api.client import EciClient, EciClientConfig
    from vk_eci.cloud.api.credentials import AccessKey
    from vk_eci.emulator import Emulator, ManualClock

    clock = ManualClock()
    async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                        time_scale=1.0, clock=clock) as emu:
        client = EciClient(EciClientConfig(region_id="cn-hangzhou",
                                           credential=AccessKey("AK", "SK"),
                                           endpoint=emu.endpoint, protocol="http"))
        catalog = CacheCatalog(client, clock=clock.now, monotonic=clock.now)
        chooser = PodCacheChooser(catalog, _Events())
        settings = ProviderSettings(Placement(region_id="cn-hangzhou", vswitch_ids=("vsw-bench",),
                                              security_group_id="sg-bench"),
                                    cluster_name="bench", node_name="virtual-kubelet")
        print("Flink pod (386.26 MB) create -> Running on the emulator, manual clock, scale 1:")
        cold, cold_result = await _start_seconds(client, chooser, settings, clock, 0, {})
        await catalog.sync()  # the node's view before the cache exists
        await client.create_image_cache(eci.CreateImageCacheRequest(
            region_id="cn-hangzhou", image_cache_name="flink", image=FLINK_IMAGES,
            security_group_id="sg-bench", v_switch_id="vsw-bench"))
        clock.advance(3600)  # the build finishes; the node has not listed since
        listed_before = len(emu.recorded("DescribeImageCaches"))
        warm, warm_result = await _start_seconds(client, chooser, settings, clock, 1,
                                                 {AUTO_KEY: "true"})
        relists = len(emu.recorded("DescribeImageCaches")) - listed_before
    print(f"  without cache: {cold:6.1f} s   ({cold_result})")
    print(f"  with cache:    {warm:6.1f} s   ({warm_result}, chosen by automatic match after "
          f"{relists} re-listing)")
    print(f"  ratio:         {cold / warm:6.1f}x   (ECI documents 50 s vs 5 s = 10x)")
    return {"cold_s": cold, "warm_s": warm}


async def bench_overhead(args: argparse.Namespace, rep: Report) -> None:
    """Part 0 (see the module docstring)."""
    import tempfile

    from alibabacloud_eci20180808 import models as eci
    from kubernetes_asyncio import client, config

    from benchmarks.bench_status import Watcher, quantile, transitions, wait_for
    from tests.fixtures.node import NodeProcess, free_port, node_command, node_env
    from vk_eci.cloud.api.client import EciClient, EciClientConfig
    from vk_eci.cloud.api.credentials import AccessKey
    from vk_eci.controlplane import cluster
    from vk_eci.emulator import Emulator

    directory = Path(tempfile.mkdtemp(prefix="vk-bench-cache-"))
    cp = cluster.up(directory)
    ns = "bench-cache"
    try:
        async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                            time_scale=args.time_scale) as emu, aiohttp.ClientSession() as http:
            eci_client = EciClient(EciClientConfig(
                region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                endpoint=emu.endpoint, protocol="http"))
            await eci_client.create_image_cache(eci.CreateImageCacheRequest(
                region_id="cn-hangzhou", image_cache_name="flink", image=FLINK_IMAGES,
                security_group_id="sg-test", v_switch_id="vsw-test"))

            async def cache_ready() -> bool:
                caches = await eci_client.describe_image_caches(name="flink")
                return bool(caches) and caches[0].status == "Ready"

            await wait_for("image cache Ready", cache_ready, time.monotonic() + 300, 0.5)
            configuration = client.Configuration()
            await config.load_kube_config(config_file=str(cp.kubeconfig),
                                          client_configuration=configuration)
            async with client.ApiClient(configuration) as api:
                core = client.CoreV1Api(api)
                namespace: Any = {"metadata": {"name": ns}}
                await core.create_namespace(namespace)
                watcher = Watcher(api, namespace=ns)
                watcher.start()
                port = free_port()
                node = NodeProcess(name="bench-cache-vk", argv=node_command(
                    cp.kubeconfig, emu.endpoint, "bench-cache-vk", port,
                    **{"lease-renew-interval": "10", "log-level": "warning"}),
                    env=node_env(), log_path=Path(tempfile.mkstemp(suffix=".log")[1]),
                    metrics_port=port)
                await node.start()
                rows = []
                try:
                    await asyncio.sleep(5)
                    for label, annotations in (("none", {}), ("cache", {AUTO_KEY: "true"})):
                        sent: dict[str, float] = {}
                        names = [f"{label}-{i}" for i in range(args.start_pods)]
                        for name in names:
                            body: Any = {"metadata": {"name": name, "annotations": annotations},
                                         "spec": {"nodeName": node.name, "containers": [
                                             {"name": "c", "image": FLINK_IMAGES[0],
                                              "command": ["sleep", "36000"]}]}}
                            sent[name] = time.time()
                            await core.create_namespaced_pod(ns, body)
                            await asyncio.sleep(1.0)

                        async def running(names: list[str] = names) -> bool:
                            return all("Running" in watcher.seen.get(n, {}) for n in names)

                        await wait_for(f"{label} pods Running", running,
                                       time.monotonic() + 600, 0.5)
                        exact = await transitions(http, emu.endpoint)
                        groups = [exact.get(naming.group_name(ns, n)) for n in names]
                        after = [watcher.seen[n]["Running"] - g["running"]
                                 for n, g in zip(names, groups, strict=True)
                                 if g and g.get("running") and "Running" in watcher.seen[n]]
                        before = [g["created"] - sent[n] for n, g in zip(names, groups,
                                                                         strict=True) if g]
                        total = [a + b for a, b in zip(before, after, strict=False)]
                        eci_start = [(g["running"] - g["created"]) / args.time_scale
                                     for g in groups if g and g.get("running")]
                        rows.append([label, len(after), f"{quantile(eci_start, 0.5):.1f}",
                                     f"{quantile(before, 0.5):.2f}",
                                     f"{quantile(after, 0.5):.2f}",
                                     f"{quantile(after, 0.99):.2f}",
                                     f"{quantile(total, 0.5):.2f}",
                                     f"{quantile(total, 0.99):.2f}"])
                        rep.goal(f"node overhead p99 ({label})", quantile(total, 0.99), "<=",
                                 1.5, "s")
                finally:
                    await node.stop()
                    if watcher.task is not None:
                        watcher.task.cancel()
    finally:
        cluster.down(directory)
    rep.table(["image cache", "pods", "ECI's own start s (model, at ECI pace)",
               "create -> ECI accepted p50 s", "ECI Running -> Kubernetes p50 s",
               "ECI Running -> Kubernetes p99 s", "node overhead p50 s",
               "node overhead p99 s"], rows,
              title=f"The node's overhead on top of ECI (time scale {args.time_scale:g}, "
              "pods started 1 s apart)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caches", default="1000,10000")
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--skip-start", action="store_true", help="only the match latency")
    parser.add_argument("--start-pods", type=int, default=10,
                        help="pods per variant of the overhead measurement (0: skip it)")
    parser.add_argument("--time-scale", type=float, default=0.1)
    args = parser.parse_args()
    if not 0 <= args.start_pods <= 50:
        parser.error("--start-pods: 0 to 50")
    rep = Report("bench_cache_start", __doc__)
    if args.start_pods:
        asyncio.run(bench_overhead(args, rep))
    if not args.skip_start:
        model = asyncio.run(bench_start())
        rep.table(["without cache s", "with cache s", "ratio"],
                  [[f"{model['cold_s']:.1f}", f"{model['warm_s']:.1f}",
                    f"{model['cold_s'] / model['warm_s']:.1f}x"]],
                  title="ECI's own start as the emulator models it (manual clock, scale 1; "
                  "the model of ECI's documented 50 s vs 5 s, not a figure of the node)")
    rows = []
    for n in (int(x) for x in args.caches.split(",")):
        r = asyncio.run(bench_match_latency(n, args.pods))
        rows.append([f"{n:,}", f"{r['auto_p50_us']:.1f}", f"{r['auto_p99_us']:.1f}",
                     f"{r['none_p50_us']:.1f}", f"{r['none_p99_us']:.1f}",
                     f"{r['hit_or_partial_share']:.0%}", f"{r['relist_ms']:.1f}",
                     f"{r['first_listing_ms']:.1f}"])
    rep.table(["caches", "auto p50 µs", "auto p99 µs", "none p50 µs", "none p99 µs",
               "matched", "re-list ms", "first list ms"], rows,
              title="The node's added latency per pod for the cache choice (decide_for_pod)")
    rep.text("re-list: applying a listing of N caches (in memory, one changed), at most once "
             "per minimum listing age (default 5 s), shared by the pods that arrive meanwhile; "
             "over the network ECI's paging (20 per page) adds one round trip per 20 caches.")
    rep.finish()


if __name__ == "__main__":
    main()
