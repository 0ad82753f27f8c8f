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


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String`` writes it, to the millisecond, as the
    kubelet's pull events do: ``850ms``, ``47s``, ``1m41.289s``, ``1h0m2s``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
