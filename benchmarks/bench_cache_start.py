"""What an image cache buys a pod, and what choosing it costs the node (issue 6 figures).

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

Usage: python benchmarks/bench_cache_start.py [--caches 1000,10000] [--pods 2000]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from alibabacloud_eci20180808.models import DescribeImageCachesResponseBodyImageCaches
from kubernetes_asyncio.client import (
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
)

from vk_eci.cloud.annotations import AUTO_KEY
from vk_eci.cloud.cache_catalog import CacheCatalog
from vk_eci.cloud.cache_choice import decide_for_pod
from vk_eci.cloud.cache_chooser import PodCacheChooser
from vk_eci.cloud.provider import ProviderSettings
from vk_eci.cloud.translate import pod_to_request
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

    from vk_eci.cloud.client import AccessKey, EciClient, EciClientConfig
    from vk_eci.emulator import Emulator, ManualClock

    clock = ManualClock()
    async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                        time_scale=1.0, clock=clock) as emu:
        client = EciClient(EciClientConfig(region_id="cn-hangzhou",
                                           credential=AccessKey("AK", "SK"),
                                           endpoint=emu.endpoint, protocol="http"))
        catalog = CacheCatalog(client, clock=clock.now, monotonic=clock.now)
        chooser = PodCacheChooser(catalog, _Events())
        settings = ProviderSettings(region_id="cn-hangzhou", vswitch_ids=("vsw-bench",),
                                    security_group_id="sg-bench", cluster_name="bench",
                                    node_name="virtual-kubelet")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caches", default="1000,10000")
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--skip-start", action="store_true", help="only the match latency")
    args = parser.parse_args()
    if not args.skip_start:
        asyncio.run(bench_start())
        print()
    print("node's added latency per pod for the cache choice (decide_for_pod):")
    print(f"{'caches':>8} {'auto p50 µs':>12} {'auto p99 µs':>12} {'none p50 µs':>12} "
          f"{'none p99 µs':>12} {'matched':>8} {'re-list ms':>11} {'first list ms':>14}")
    for n in (int(x) for x in args.caches.split(",")):
        r = asyncio.run(bench_match_latency(n, args.pods))
        print(f"{n:>8} {r['auto_p50_us']:>12.1f} {r['auto_p99_us']:>12.1f} "
              f"{r['none_p50_us']:>12.1f} {r['none_p99_us']:>12.1f} "
              f"{r['hit_or_partial_share']:>8.0%} {r['relist_ms']:>11.1f} "
              f"{r['first_listing_ms']:>14.1f}")
    print("re-list: applying a listing of N caches (in memory, one changed), at most once per "
          "minimum listing age (default 5 s), shared by the pods that arrive meanwhile; over "
          "the network ECI's paging (20 per page) adds one round trip per 20 caches.")


if __name__ == "__main__":
    main()
