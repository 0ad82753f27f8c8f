"""Benchmark of ``matcher.CacheIndex`` against a plain-Python matcher measured in the same run.

Workload: caches of 1-20 distinct images and pods of 1-10 distinct images, drawn from a
50,000-reference vocabulary with Zipf popularity (rank r has weight 1/r**s, s=1 by default, so the
most popular image is in about 60% of caches). Prints a Markdown table and the matcher's goals
judged on it, and writes both to benchmarks/results/; exits non-zero only on a wrong answer,
never on a slow one.

    python benchmarks/bench_matcher.py            # 1k, 10k, 100k caches (a few minutes)
    python benchmarks/bench_matcher.py --quick    # 1k, 10k, smaller samples (under a minute)
    python benchmarks/bench_matcher.py --sizes 1000000 --pods 2000
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import Report

from matcher import CacheIndex, Match, normalize_image

VOCAB = 50_000
NOW = 1_700_000_000.0


@dataclass(frozen=True)
class Cache:
    cache_id: str
    images: tuple[str, ...]
    size: int
    created: float
    ready: bool
    expires: float | None


def vocabulary(n: int) -> list[str]:
    # Already-normal references, so the baseline pays no parsing either.
    return [
        normalize_image(f"registry.cn-hangzhou.aliyuncs.com/team{i % 997}/app{i}:v{i % 13}")
        for i in range(n)
    ]


class Workload:
    def __init__(self, seed: int, zipf_s: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.vocab = vocabulary(VOCAB)
        weights = 1.0 / np.arange(1, VOCAB + 1, dtype=np.float64) ** zipf_s
        self.cdf = np.cumsum(weights / weights.sum())
        self.serial = 0

    def draw(self, k: int) -> tuple[str, ...]:
        picked: dict[int, None] = {}
        while len(picked) < k:
            u = self.rng.random(2 * k)
            for i in np.searchsorted(self.cdf, u).tolist():
                picked.setdefault(min(i, VOCAB - 1), None)
                if len(picked) == k:
                    break
        return tuple(self.vocab[i] for i in picked)

    def cache(self) -> Cache:
        self.serial += 1
        roll = self.rng.random()
        expires = None if roll < 0.8 else NOW - 60 if roll < 0.85 else NOW + 86_400
        return Cache(
            cache_id=f"imc-{self.serial:08d}",
            images=self.draw(int(self.rng.integers(1, 21))),
            size=int(self.rng.choice([20, 20, 30, 40, 50, 80, 100, 200])),
            created=NOW - float(self.rng.integers(0, 90 * 86_400)),
            ready=bool(self.rng.random() < 0.95),
            expires=expires,
        )

    def pod(self) -> tuple[str, ...]:
        return self.draw(int(self.rng.integers(1, 11)))


class PlainMatcher:
    """The straightforward matcher: sets, a loop over every cache, a sort key."""

    def __init__(self, caches: Sequence[Cache]) -> None:
        self.caches = [(c, frozenset(c.images)) for c in caches]

    def best(self, pod: Sequence[str], now: float) -> str | None:
        wanted = frozenset(pod)
        best_key: tuple[int, int, float, str] | None = None
        for c, images in self.caches:
            if not c.ready or (c.expires is not None and c.expires <= now):
                continue
            n = len(wanted & images)
            if n < 1:
                continue
            key = (-n, c.size, -c.created, c.cache_id)
            if best_key is None or key < best_key:
                best_key = key
        return None if best_key is None else best_key[3]


def build(caches: Sequence[Cache]) -> CacheIndex:
    idx = CacheIndex()
    for c in caches:
        idx.upsert(
            c.cache_id,
            c.images,
            size_gib=c.size,
            created_at=c.created,
            ready=c.ready,
            expires_at=c.expires,
        )
    return idx


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(n: int, work: Workload, pods: int, many: int, baseline_pods: int) -> dict[str, str]:
    caches = [work.cache() for _ in range(n)]
    gc.collect()
    t0 = time.perf_counter()
    idx = build(caches)
    build_s = time.perf_counter() - t0

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    probe = build(caches)
    mem_mb = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    del probe

    # The index's long-lived objects are moved out of the collector's reach, as a long-running
    # node would after start-up; otherwise a full collection lands inside some timed lookups.
    gc.collect()
    gc.freeze()
    sample = [work.pod() for _ in range(pods)]
    for pod in sample[:50]:  # warm caches (normalisation memo, numpy code paths)
        idx.best(pod, now=NOW)
    lat: list[float] = []
    cpu: list[float] = []  # thread CPU time: what the lookup costs without other processes
    touched0 = idx.postings_touched
    for pod in sample:
        c = time.thread_time_ns()
        t = time.perf_counter_ns()
        idx.best(pod, now=NOW)
        lat.append((time.perf_counter_ns() - t) / 1e3)
        cpu.append((time.thread_time_ns() - c) / 1e3)
    touched = (idx.postings_touched - touched0) / len(sample)

    batch = [work.pod() for _ in range(many)]
    t0 = time.perf_counter()
    answers = idx.best_many(batch, now=NOW)
    many_s = time.perf_counter() - t0

    plain = PlainMatcher(caches)
    base_lat: list[float] = []
    for pod in sample[:baseline_pods]:
        t = time.perf_counter_ns()
        want = plain.best(pod, NOW)
        base_lat.append((time.perf_counter_ns() - t) / 1e3)
        got = idx.best(pod, now=NOW)
        if (got.cache_id if got else None) != want:
            raise SystemExit(f"WRONG ANSWER at {n} caches for pod {pod}: {got} != {want}")
    for pod, got in list(zip(batch, answers, strict=True))[:baseline_pods]:
        want = plain.best(pod, NOW)
        if (got.cache_id if isinstance(got, Match) else None) != want:
            raise SystemExit(f"WRONG best_many ANSWER at {n} caches: {got} != {want}")

    # Churn: replace caches (new images) and remove/re-add others, one at a time.
    churn = min(5000, n)
    victims = [caches[int(i)] for i in work.rng.choice(n, churn, replace=False)]
    fresh = [work.cache() for _ in range(churn)]
    t0 = time.perf_counter()
    for old, new in zip(victims, fresh, strict=True):
        idx.upsert(old.cache_id, new.images, size_gib=new.size, created_at=new.created)
    upsert_us = (time.perf_counter() - t0) / churn * 1e6
    t0 = time.perf_counter()
    for old in victims:
        idx.remove(old.cache_id)
    remove_us = (time.perf_counter() - t0) / churn * 1e6
    t0 = time.perf_counter()
    for new in fresh:
        idx.upsert(new.cache_id, new.images, size_gib=new.size, created_at=new.created)
    add_us = (time.perf_counter() - t0) / churn * 1e6
    t = time.perf_counter_ns()
    after = idx.best(sample[0], now=NOW)
    after_us = (time.perf_counter_ns() - t) / 1e3
    assert after is None or after.cache_id in idx

    gc.unfreeze()
    p50 = statistics.median(lat)
    base_p50 = statistics.median(base_lat)
    return {
        "caches": f"{n:,}",
        "build s": f"{build_s:.2f}",
        "upsert µs": f"{upsert_us:.1f}",
        "remove µs": f"{remove_us:.1f}",
        "add µs": f"{add_us:.1f}",
        "p50 µs": f"{p50:.0f}",
        "p99 µs": f"{percentile(lat, 0.99):.0f}",
        "max µs": f"{max(lat):.0f}",
        "cpu p50/p99 µs": f"{statistics.median(cpu):.0f}/{percentile(cpu, 0.99):.0f}",
        "baseline p50 µs": f"{base_p50:.0f}",
        "speed-up": f"{base_p50 / p50:.0f}x",
        f"best_many {many:,} s": f"{many_s:.2f}",
        "memory MB": f"{mem_mb:.0f}",
        "postings/lookup": f"{touched:,.0f}",
        "1st lookup after churn µs": f"{after_us:.0f}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1k and 10k caches, small samples")
    ap.add_argument("--sizes", type=int, nargs="*", help="cache counts (default 1k 10k 100k)")
    ap.add_argument("--pods", type=int, help="pods timed one by one")
    ap.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of image popularity")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    pods = args.pods or (500 if args.quick else 3000)
    many = 2_000 if args.quick else 10_000
    baseline_pods = 30 if args.quick else 100
    work = Workload(args.seed, args.zipf)
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        rows.append(measure(n, work, pods, many, baseline_pods))
        print(f"# {n:,} caches measured in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    heads = list(rows[0])
    rep = Report("bench_matcher" + ("_quick" if args.quick else ""), __doc__)
    rep.text(f"zipf s={args.zipf}, vocabulary {VOCAB:,}, {pods} timed pods, "
             f"{baseline_pods} baseline pods, numpy {np.__version__}. Wall times on a shared "
             "machine include other processes' load; the CPU column is this thread's time.")
    rep.table(heads, [[row[h] for h in heads] for row in rows])
    # The matcher's goals, judged at the largest size measured, on the printed figures.
    big = rows[-1]
    at = f" at {big['caches']} caches"
    if sizes[-1] < 100_000:
        rep.text("The matcher's goals are set at 100,000 caches, which this run did not measure.")
        rep.finish(write=False)
        return
    rep.goal("lookup p50" + at, float(big["p50 µs"]), "<=", 200, "µs")
    rep.goal("lookup p99 (wall)" + at, float(big["p99 µs"]), "<=", 1000, "µs")
    rep.goal("lookup p99 (thread CPU)" + at,
             float(big["cpu p50/p99 µs"].split("/")[1]), "<=", 1000, "µs")
    rep.goal("speed-up over the plain-Python baseline" + at,
             float(big["speed-up"].rstrip("x")), ">=", 100, "x")
    rep.goal(f"best_many of {many:,} pods" + at, float(big[f"best_many {many:,} s"]), "<=", 2,
             "s")
    rep.goal("upsert (replace a cache's images)" + at, float(big["upsert µs"]), "<=", 50, "µs")
    rep.goal("remove" + at, float(big["remove µs"]), "<=", 50, "µs")
    rep.goal("memory" + at, float(big["memory MB"]), "<=", 200, "MB")
    rep.finish()

if __name__ == "__main__":
    main()
