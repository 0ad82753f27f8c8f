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
    pods = [_pod(i, rng.choices(vocab, weights, k=rng.randint(1, 10)), {AUTO_KEY: "true"})
            for i in range(n_pods)]
    plain = [_pod(i, [vocab[i % 100]], {}) for i in range(n_pods)]
    metrics = Metrics()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caches", default="1000,10000")
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--skip-start", action="store_true", help="only the match latency")
    args = parser.parse_args()
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
