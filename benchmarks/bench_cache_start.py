"""What an image cache buys a pod, and what choosing it costs the node (issue 6 figures).

1. Start time of a pod of the Flink images (386.26 MB) on the ECI emulator with its manual
   clock at time scale 1 (so the figures are the modelled seconds, and the run takes a second or
   two of real time): created without a cache, then with a Ready cache chosen automatically by
   the node's own decision code. ECI documents 50 s vs 5 s.
2. The node's own added latency per pod for the choice (annotations, index lookup, pull-policy
   plan, events): ``decide_for_pod`` over a catalog of N caches, p50/p99, against the baseline of
   a pod that asks for no cache, measured in the same run.

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
from typing import Any

from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.annotations import AUTO_KEY
from vk_eci.cloud.cache_catalog import CacheCatalog, CacheInfo
from vk_eci.cloud.cache_choice import decide_for_pod
from vk_eci.metrics import Metrics

FLINK_IMAGES = ["registry.cn-hangzhou.aliyuncs.com/eci_open/flink:1.13"]
NOW = 1_704_067_200.0


class _NoEci:
    async def describe_image_caches(self, *, ids: Any = None) -> list[Any]:
        return []


def _pod(i: int, images: list[str], annotations: dict[str, str]) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name=f"p{i}", namespace="bench", annotations=annotations),
                 spec=V1PodSpec(containers=[
                     V1Container(name=f"c{j}", image=img, image_pull_policy="Always")
                     for j, img in enumerate(images)]))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_match_latency(n_caches: int, n_pods: int, seed: int = 7) -> dict[str, float]:
    """decide_for_pod p50/p99 (µs) for auto-matching pods and for pods asking for nothing."""
    rng = random.Random(seed)
    vocab = [f"registry.example.com/team{i % 97}/app{i}:v{i % 13}" for i in range(20_000)]
    weights = [1.0 / (r + 1) for r in range(len(vocab))]  # Zipf-like popularity
    catalog = CacheCatalog(_NoEci(), clock=lambda: NOW)
    from matcher import normalize_image

    for c in range(n_caches):
        images = tuple(dict.fromkeys(normalize_image(x) for x in
                                     rng.choices(vocab, weights, k=rng.randint(1, 20))))
        catalog.put(CacheInfo(cache_id=f"imc-{c:08d}", name=f"c{c}", status="Ready",
                              images=images, size_gib=rng.choice([20, 30, 50, 100]),
                              created_at=NOW - rng.uniform(0, 86_400 * 30)))
    catalog.synced.set()  # filled by hand: no listing to wait for
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
    return out


async def _start_seconds(emu: Any, client: Any, catalog: CacheCatalog, clock: Any,
                         name: str, annotations: dict[str, str]) -> tuple[float, str]:
    """Emulated seconds from CreateContainerGroup to Running, and the cache result."""
    from alibabacloud_eci20180808 import models as eci

    pod = _pod(0, FLINK_IMAGES, annotations)
    decision = await decide_for_pod(pod, catalog, now=clock.now())
    container = eci.CreateContainerGroupRequestContainer(
        name="flink", image=FLINK_IMAGES[0], cpu=2.0, memory=4.0,
        image_pull_policy=decision.pull_policy_overrides.get("c0", "Always"))
    req = eci.CreateContainerGroupRequest(
        region_id="cn-hangzhou", container_group_name=name, security_group_id="sg-bench",
        v_switch_id="vsw-bench", container=[container], cpu=2.0, memory=4.0,
        image_snapshot_id=decision.image_snapshot_id,
        auto_match_image_cache=decision.auto_match_image_cache or None)
    started = clock.now()
    group_id = await client.create_container_group(req)
    while clock.now() - started < 600:
        [group] = await client.describe_container_groups(ids=[group_id])
        if group.status == "Running":
            return clock.now() - started, decision.result or "none"
        clock.advance(0.1)  # so figures are to +0.1 s
    raise RuntimeError(f"{name} not Running after 600 emulated seconds")


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
        catalog = CacheCatalog(client, clock=clock.now)
        cold, cold_result = await _start_seconds(emu, client, catalog, clock, "flink-cold", {})
        await client.create_image_cache(eci.CreateImageCacheRequest(
            region_id="cn-hangzhou", image_cache_name="flink", image=FLINK_IMAGES,
            security_group_id="sg-bench", v_switch_id="vsw-bench"))
        clock.advance(3600)  # the build finishes
        await catalog.sync()
        warm, warm_result = await _start_seconds(emu, client, catalog, clock, "flink-warm",
                                                 {AUTO_KEY: "true"})
    print("Flink pod (386.26 MB) create -> Running on the emulator, manual clock, scale 1:")
    print(f"  without cache: {cold:6.1f} s   ({cold_result})")
    print(f"  with cache:    {warm:6.1f} s   ({warm_result}, chosen by automatic match)")
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
          f"{'none p99 µs':>12} {'matched':>8}")
    for n in (int(x) for x in args.caches.split(",")):
        r = asyncio.run(bench_match_latency(n, args.pods))
        print(f"{n:>8} {r['auto_p50_us']:>12.1f} {r['auto_p99_us']:>12.1f} "
              f"{r['none_p50_us']:>12.1f} {r['none_p99_us']:>12.1f} "
              f"{r['hit_or_partial_share']:>8.0%}")


if __name__ == "__main__":
    main()
