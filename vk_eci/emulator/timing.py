"""Modelled durations. Every one is multiplied by ``time_scale`` (0.01 = 100x faster).

Defaults reproduce ECI's documented Flink case: 386.26 MB takes about 50 s from create to
Running without a cache (2 s scheduling + 47 s pull + 1 s start), about 5 s with a cache hit
(2 s scheduling + 2 s attaching the cache disk + 1 s start).
"""

from __future__ import annotations

from dataclasses import dataclass

from vk_eci.emulator.catalog import FLINK_MB

DAY_S = 86_400.0


@dataclass(frozen=True)
class Timing:
    time_scale: float = 1.0
    scheduling_s: float = 2.0
    cache_attach_s: float = 2.0
    container_start_s: float = 1.0
    bandwidth_mb_s: float = FLINK_MB / 47.0
    pull_retry_s: float = 10.0
    backoff_base_s: float = 10.0
    backoff_max_s: float = 300.0
    cache_prepare_s: float = 5.0
    cache_snapshot_s: float = 10.0
    failed_cache_keep_s: float = DAY_S

    def d(self, seconds: float) -> float:
        """A modelled duration in emulated seconds."""
        return seconds * self.time_scale

    def pull_s(self, size_mb: float) -> float:
        return self.d(size_mb / self.bandwidth_mb_s)

    def backoff_s(self, restarts: int) -> float:
        return self.d(min(self.backoff_base_s * (2 ** min(restarts, 10)), self.backoff_max_s))
