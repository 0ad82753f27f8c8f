"""Pod status from ECI back to Kubernetes, in batches.

Each cycle asks the provider once for every pod it runs for this node (``get_pods``: the ECI
provider answers from ``DescribeContainerGroups`` filtered by the node's tags, 20 groups a
page), then writes the status of each pod whose status changed, and only those. A cycle runs
every ``status_sync_interval`` seconds, or sooner (after a short debounce, so a burst of creates
costs one cycle) when the pod controller pokes it. A group missing from ECI for MISSING_CYCLES
cycles in a row while its pod should be running marks the pod Failed with a reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from kubernetes_asyncio import client

from vk_eci.cluster.node import node_ip
from vk_eci.cluster.pods import TERMINAL, PodController, cache_result
from vk_eci.log import pods_logger

VANISHED = "ProviderPodNotFound"
# Listings page by offset, so a group can slip past one listing while others are deleted: only
# this many misses in a row (each a full listing) mean that the group is really gone.
MISSING_CYCLES = 3
_WRITE_CONCURRENCY = 16
_DEBOUNCE = 0.3
# Fields of a pod's status that the provider owns and we compare to decide whether to write.
_FIELDS = ("phase", "reason", "message", "podIP", "podIPs", "hostIP", "startTime",
           "conditions", "containerStatuses", "initContainerStatuses")
_VOLATILE = ("lastProbeTime", "lastHeartbeatTime")


def comparable(status: dict[str, Any]) -> dict[str, Any]:
    """The provider-owned part of a status dict, without fields that tick on their own."""
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = status.get(name)
        if name == "conditions" and value:
            value = sorted(({k: v for k, v in c.items() if k not in _VOLATILE and v is not None}
                            for c in value), key=lambda c: str(c.get("type")))
        elif name in ("containerStatuses", "initContainerStatuses") and value:
            value = sorted(value, key=lambda c: str(c.get("name")))
        if value not in (None, [], ""):
            out[name] = value
    return out


def keep_transition_times(wanted: dict[str, Any], have: dict[str, Any]) -> None:
    """A condition whose status did not change keeps the transition time the pod has (the
    provider may not know it, e.g. after a restart), as the kubelet does; otherwise every
    cycle would rewrite an unchanged status with a new time."""
    before = {c.get("type"): c for c in have.get("conditions") or []}
    for cond in wanted.get("conditions") or []:
        old = before.get(cond.get("type"))
        if old is not None and old.get("status") == cond.get("status") and \
                old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]


class StatusSync:
    """Polls the provider for pod statuses and writes the ones that changed."""

    def __init__(self, api: client.ApiClient, pods: PodController) -> None:
        self._api = api
        self.pods = pods
        self.settings = pods.settings
        self.cycles = 0
        self.writes = 0
        self._poke = asyncio.Event()
        pods.on_created.append(self.poke)

    def poke(self) -> None:
        self._poke.set()

    async def run(self) -> None:
        await self.pods.ready.wait()
        while True:
            try:
                async with asyncio.timeout(self.settings.status_sync_interval):
                    await self._poke.wait()
                await asyncio.sleep(_DEBOUNCE)
            except TimeoutError:
                pass
            self._poke.clear()
            try:
                await self.cycle()
            except Exception as e:  # a failed cycle is retried on the next tick, never fatal
                pods_logger.warning("status sync failed: %s", e)

    async def cycle(self) -> None:
        self.cycles += 1
        self.pods.metrics.status_sync_cycles.inc()
        # One get_pods() per cycle is one fresh listing (the ECI provider: ceil(groups/20)
        # DescribeContainerGroups); nothing here asks the provider per pod.
        cloud = await self.pods.provider.get_pods()
        by_key = {f"{p.metadata.namespace}/{p.metadata.name}": p for p in cloud}
        sem = asyncio.Semaphore(_WRITE_CONCURRENCY)
        phases: Counter[str] = Counter()

        async def one(key: str, pod: Any) -> None:
            async with sem:
                try:
                    await self._sync_one(key, pod, by_key.get(key))
                except Exception as e:
                    pods_logger.warning("status of %s not written: %s", key, e,
                                        extra={"pod": key})

        work = []
        for key, pod in list(self.pods.informer.cache.items()):
            phases[(pod.status and pod.status.phase) or "Pending"] += 1
            work.append(one(key, pod))
        await asyncio.gather(*work)
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            self.pods.metrics.pods.labels(phase=phase).set(phases.get(phase, 0))

    async def _sync_one(self, key: str, pod: Any, cloud_pod: Any) -> None:
        t = self.pods.tracked.get(key)
        current_phase = pod.status.phase if pod.status else None
        if cloud_pod is None or (cloud_pod.metadata.uid
                                 and cloud_pod.metadata.uid != pod.metadata.uid):
            if (t is not None and t.created and t.uid == pod.metadata.uid
                    and pod.metadata.deletion_timestamp is None
                    and current_phase not in TERMINAL):
                t.missing += 1
                if t.missing >= MISSING_CYCLES:
                    await self._vanished(key, pod)
            return
        if t is not None and t.uid == pod.metadata.uid:
            t.missing = 0
            t.created = True
            if t.create_seconds is not None:
                self.pods.metrics.pod_create_duration.labels(
                    cache_result=cache_result(pod)).observe(t.create_seconds)
                t.create_seconds = None
        if pod.metadata.deletion_timestamp is not None or cloud_pod.status is None:
            return
        wanted = self._api.sanitize_for_serialization(cloud_pod.status)
        if not wanted.get("hostIP"):
            wanted["hostIP"] = node_ip(self.settings)
            wanted["hostIPs"] = [{"ip": wanted["hostIP"]}]
        if wanted.get("podIP") and not wanted.get("podIPs"):
            wanted["podIPs"] = [{"ip": wanted["podIP"]}]
        have = self._api.sanitize_for_serialization(pod.status) if pod.status else {}
        keep_transition_times(wanted, have)
        if comparable(wanted) == comparable(have):
            return
        # null clears a field the provider no longer reports (e.g. ProviderFailed reason).
        for name in ("reason", "message"):
            wanted.setdefault(name, None)
        if await self.pods.patch_status(pod, wanted):
            self.writes += 1
            self.pods.metrics.pod_status_writes.inc()
            if (wanted.get("phase") == "Running" and t is not None and not t.started
                    and t.uid == pod.metadata.uid):
                t.started = True
                self.pods.metrics.pod_start_duration.labels(
                    cache_result=cache_result(pod)).observe(
                    time.monotonic() - t.first_seen)

    async def _vanished(self, key: str, pod: Any) -> None:
        message = ("the ECI container group of this pod no longer exists "
                   "(deleted outside the node, or expired)")
        pods_logger.warning("container group of %s vanished; marking the pod Failed", key,
                            extra={"pod": key})
        await self.pods.recorder.record(pod, "Warning", VANISHED, message)
        await self.pods.patch_status(pod, {"phase": "Failed", "reason": VANISHED,
                                           "message": message})
