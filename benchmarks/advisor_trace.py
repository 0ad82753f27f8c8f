"""The synthetic trace of pod starts that ``bench_advisor.py`` replays (seeded).

CI runner families of 3-8 images each, drawn from a Zipf-popular pool of shared images plus the
family's runner image, whose tag is bumped every ~40 min; Flink jobs (flink + job image + a
sidecar) starting task managers in bursts; batch Jobs (spark + tools) in hourly bursts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PodStart:
    at: float
    images: tuple[str, ...]
    workload: str


def _zipf_pick(rng: random.Random, pool: Sequence[str], k: int, s: float = 1.1) -> list[str]:
    weights = [1.0 / (r + 1) ** s for r in range(len(pool))]
    out: list[str] = []
    while len(out) < k:
        pick = rng.choices(pool, weights)[0]
        if pick not in out:
            out.append(pick)
    return out


def _poisson(rng: random.Random, rate_per_h: float, hours: float) -> list[float]:
    t, out = 0.0, []
    while True:
        t += rng.expovariate(rate_per_h / 3600.0)
        if t >= hours * 3600:
            return out
        out.append(t)


def make_trace(seed: int, hours: float) -> list[PodStart]:
    rng = random.Random(seed)
    pool = [f"registry.example.com/shared/{name}:{rng.randint(1, 9)}.{rng.randint(0, 20)}"
            for name in ("jdk", "node", "python", "golang", "maven-cache", "gradle", "docker-cli",
                         "kubectl", "helm", "git", "sonar", "trivy", "postgres", "redis",
                         "chrome", "playwright", "rust", "dotnet", "ruby", "php", "terraform",
                         "awscli", "aliyun-cli", "yarn", "pnpm", "bazel", "cmake", "protoc",
                         "envoy", "otel-collector", "fluent-bit", "busybox-tools", "jq",
                         "mysql", "mongo", "kafka", "zookeeper", "minio", "nginx", "curl")]
    out: list[PodStart] = []
    for f in range(10):  # CI runner families, Zipf-popular
        shared = _zipf_pick(rng, pool, rng.randint(2, 7))
        rate = 40.0 / (f + 1)
        bump_every = rng.uniform(25, 55) * 60
        phase = rng.uniform(0, bump_every)
        for at in _poisson(rng, rate, hours):
            tag = int((at + phase) // bump_every)
            runner = f"registry.example.com/ci/runner-{f}:build-{tag}"
            out.append(PodStart(at, (*shared, runner), f"ci/Job/runner-{f}"))
    for j in range(2):  # Flink jobs: task managers in bursts
        sidecar = _zipf_pick(rng, pool, 1)
        imgs = ("flink:1.13", f"registry.example.com/flink/job-{j}:v3", *sidecar)
        offset = rng.uniform(0, 1200)
        for burst in range(int(hours * 3)):
            for k in range(4):
                out.append(PodStart(offset + burst * 1200 + k * 2.0, imgs,
                                    f"analytics/FlinkDeployment/job-{j}"))
    for b in range(3):  # batch Jobs: hourly bursts
        imgs = ("apache/spark:3.5", *_zipf_pick(rng, pool, 2))
        offset = rng.uniform(0, 3600)
        for burst in range(int(hours)):
            for k in range(8):
                out.append(PodStart(offset + burst * 3600 + k * 1.0, imgs, f"batch/Job/etl-{b}"))
    return sorted((p for p in out if p.at < hours * 3600), key=lambda p: (p.at, p.workload))
