"""``/stats/summary`` (kubelet's Summary API JSON) and ``/metrics/resource`` (Prometheus text)
from ECI's container-group metrics, the two sources ``kubectl top`` / metrics-server read.

The node's figures are the sums over its pods: a virtual node has no machine of its own, so its
cumulative CPU can go down when pods leave (Prometheus treats that as a counter reset).
Usage is fetched for all pods in one batched call and shared for ``ttl`` seconds, so a scrape of
both endpoints, or several scrapers, cost ECI one round.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from vk_eci.provider import ContainerUsage, PodIO, PodUsage

STATS_TTL = 5.0


class UsageCache:
    """The latest ``pod_usage()`` answer, refreshed at most every ``ttl`` seconds; concurrent
    callers share one refresh."""

    def __init__(self, pod_io: PodIO, ttl: float = STATS_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pod_io = pod_io
        self._ttl = ttl
        self._clock = clock
        self._value: list[PodUsage] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> list[PodUsage]:
        async with self._lock:
            if self._value is None or self._clock() - self._at >= self._ttl:
                self._value = await self._pod_io.pod_usage()
                self._at = self._clock()
            return self._value


def _ts(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cpu(when: dt.datetime, nano: int, core_nano_seconds: int) -> dict[str, Any]:
    return {"time": _ts(when), "usageNanoCores": nano, "usageCoreNanoSeconds": core_nano_seconds}


def _memory(when: dt.datetime, working_set: int, usage: int, rss: int) -> dict[str, Any]:
    return {"time": _ts(when), "workingSetBytes": working_set, "usageBytes": usage,
            "rssBytes": rss, "pageFaults": 0, "majorPageFaults": 0}


def _container(c: ContainerUsage, when: dt.datetime, pod_start: dt.datetime | None,
               ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": c.name,
        "cpu": _cpu(when, c.cpu_nano_cores, c.cpu_core_nano_seconds),
        "memory": _memory(when, c.memory_working_set_bytes, c.memory_usage_bytes,
                          c.memory_rss_bytes),
    }
    start = c.start_time or pod_start
    if start is not None:
        out["startTime"] = _ts(start)
    return out


def _pod(p: PodUsage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
        "containers": [_container(c, p.timestamp, p.start_time) for c in p.containers],
        "cpu": _cpu(p.timestamp, p.cpu_nano_cores, p.cpu_core_nano_seconds),
        "memory": _memory(p.timestamp, p.memory_working_set_bytes, p.memory_usage_bytes,
                          p.memory_rss_bytes),
    }
    if p.start_time is not None:
        out["startTime"] = _ts(p.start_time)
    if p.rx_bytes is not None or p.tx_bytes is not None:
        iface = {"name": "eth0", "rxBytes": p.rx_bytes or 0, "txBytes": p.tx_bytes or 0}
        out["network"] = {"time": _ts(p.timestamp), **iface, "interfaces": [iface]}
    return out


def summary(node_name: str, started: dt.datetime, pods: list[PodUsage],
            now: dt.datetime | None = None) -> dict[str, Any]:
    """kubelet's ``statsapi.Summary`` for the node and its pods."""
    when = max((p.timestamp for p in pods), default=now or dt.datetime.now(dt.UTC))
    return {
        "node": {
            "nodeName": node_name, "startTime": _ts(started), "systemContainers": [],
            "cpu": _cpu(when, sum(p.cpu_nano_cores for p in pods),
                        sum(p.cpu_core_nano_seconds for p in pods)),
            "memory": _memory(when, sum(p.memory_working_set_bytes for p in pods),
                              sum(p.memory_usage_bytes for p in pods),
                              sum(p.memory_rss_bytes for p in pods)),
        },
        "pods": [_pod(p) for p in pods],
    }


_HELP = {
    "container_cpu_usage_seconds_total": (
        "counter", "[STABLE] Cumulative cpu time consumed by the container in core-seconds"),
    "container_memory_working_set_bytes": (
        "gauge", "[STABLE] Current working set of the container in bytes"),
    "container_start_time_seconds": (
        "gauge", "[STABLE] Start time of the container since unix epoch in seconds"),
    "node_cpu_usage_seconds_total": (
        "counter", "[STABLE] Cumulative cpu time consumed by the node in core-seconds"),
    "node_memory_working_set_bytes": (
        "gauge", "[STABLE] Current working set of the node in bytes"),
    "pod_cpu_usage_seconds_total": (
        "counter", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds"),
    "pod_memory_working_set_bytes": (
        "gauge", "[STABLE] Current working set of the pod in bytes"),
    "resource_scrape_error": (
        "gauge", "[STABLE] 1 if there was an error while getting container metrics, "
                 "0 otherwise"),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def resource_metrics(pods: list[PodUsage], error: bool = False) -> str:
    """kubelet's ``/metrics/resource`` in the Prometheus text format (0.0.4), with sample
    timestamps (ms) of ECI's measurement as kubelet gives its own."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}

    def add(name: str, value: float, when: dt.datetime | None, **labels: str) -> None:
        stamp = f" {int(when.timestamp() * 1000)}" if when is not None else ""
        samples[name].append(f"{name}{_labels(**labels)} {_num(value)}{stamp}")

    ordered = sorted(pods, key=lambda p: (p.namespace, p.name))
    for p in ordered:
        for c in sorted(p.containers, key=lambda c: c.name):
            labels = {"container": c.name, "namespace": p.namespace, "pod": p.name}
            add("container_cpu_usage_seconds_total", c.cpu_core_nano_seconds / 1e9,
                p.timestamp, **labels)
            add("container_memory_working_set_bytes", c.memory_working_set_bytes,
                p.timestamp, **labels)
            start = c.start_time or p.start_time
            if start is not None:
                add("container_start_time_seconds", start.timestamp(), None, **labels)
    if ordered:
        when = max(p.timestamp for p in ordered)
        add("node_cpu_usage_seconds_total",
            sum(p.cpu_core_nano_seconds for p in ordered) / 1e9, when)
        add("node_memory_working_set_bytes",
            sum(p.memory_working_set_bytes for p in ordered), when)
    for p in ordered:
        labels = {"namespace": p.namespace, "pod": p.name}
        add("pod_cpu_usage_seconds_total", p.cpu_core_nano_seconds / 1e9, p.timestamp,
            **labels)
        add("pod_memory_working_set_bytes", p.memory_working_set_bytes, p.timestamp, **labels)
    add("resource_scrape_error", 1 if error else 0, None)
    lines: list[str] = []
    for name, (kind, help_text) in _HELP.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(samples[name])
    return "\n".join(lines) + "\n"
