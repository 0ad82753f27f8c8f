"""Pod status from ECI back to Kubernetes, in batches.

A full cycle asks the provider once for every pod it runs for this node (``get_pods``: the ECI
provider answers from ``DescribeContainerGroups`` filtered by the node's tags, 20 groups a
page), then writes the status of each pod whose status changed, and only those. A group
missing from ECI for MISSING_CYCLES full cycles in a row while its pod should be running marks
the pod Failed with a reason.

Incremental mode (default; docs/BEHAVIOUR.md §10), with a provider that can say what changed
(:class:`vk_eci.provider.IncrementalStatus`): every ``status_poll_interval`` (every
``status_poll_fast_interval`` while a pod starts or stops, or soon after a create) only the
changed pods are asked for and written; a full cycle runs every ``status_resync_interval`` to
catch anything missed and groups gone outside us. Full mode runs a full cycle every
``status_sync_interval``, or sooner after a create (after a short debounce, so that a burst of
creates costs one cycle).

Each write that changes a pod's phase observes ``vk_eci_pod_status_lag_seconds{phase}``: now
minus the later of ECI's transition timestamp and the provider's "not before" (when it last
asked and the change was not there yet). ECI stamps whole seconds, so its timestamp alone
could be up to a second early; both bounds are lower bounds of the transition, so the lag is
never under-reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from vk_eci.cloud.groups.allocated import missing as missing_allocation
from vk_eci.cluster.kube.informer import object_key
from vk_eci.cluster.node.controller import node_ip
from vk_eci.cluster.pods.controller import TERMINAL, PodController, cache_result
from vk_eci.log import pods_logger
from vk_eci.provider import IncrementalStatus, StatusChange

VANISHED = "ProviderPodNotFound"
# Listings page by offset, so a group can slip past one listing while others are deleted: only
# this many misses in a row (each a full listing) mean that the group is really gone.
MISSING_CYCLES = 3
# Status writes in flight per poll (or resync slice): a poll after a burst of starts holds
# hundreds, each a round trip to a busy API server.
_WRITE_CONCURRENCY = 32
_DEBOUNCE = 0.3
_RESYNC_SLICE = 200  # pods compared (and written if changed) between polls in a resync
_GAUGE_EVERY = 5.0  # seconds between recounts of the pods-by-phase gauge between full cycles
# Fields of a pod's status that the provider owns and we compare to decide whether to write.
_FIELDS = ("phase", "reason", "message", "podIP", "podIPs", "hostIP", "startTime",
           "conditions", "containerStatuses", "initContainerStatuses")
_VOLATILE = ("lastProbeTime", "lastHeartbeatTime")


# One pod to sync: key, the informer's pod, the cloud's pod, "not before" and fingerprint
# (StatusChange).
_Work = tuple[str, Any, Any, float | None, int | None]


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
        self.polls = 0
        self.writes = 0
        self._poke = asyncio.Event()
        self._phase_written: dict[str, tuple[str, str]] = {}  # key -> (uid, phase) we wrote
        # key -> (uid, resourceVersion the pod had, digest of the status) of our last
        # write, until the informer shows a newer pod: no second write of the same status.
        self._sent: dict[str, tuple[str, str, int]] = {}
        # key -> hash((uid, resourceVersion, fingerprint of ECI's answer)) when a full listing
        # last found the pod's status equal to ECI's: the next listing skips it while all three
        # stay. A hash, not the tuple: one int a pod at rest.
        self._agreed: dict[str, int] = {}
        self._counted_at = 0.0
        self._write_failed = False  # a status write failed since the last full listing
        # While a resync runs: when its listing began, and the pods a poll read after that.
        # Its statuses are as old as its pages, and it writes them slice by slice for minutes
        # at thousands of pods; a poll that read a pod after the listing began has a status
        # at least as new (and the polls report every later change), so the resync leaves it.
        self._resync_began: float | None = None
        self._polled: set[str] = set()
        pods.on_created.append(self.poke)

    def poke(self) -> None:
        self._poke.set()

    async def run(self) -> None:
        await self.pods.ready.wait()
        provider = self.pods.provider
        if self.settings.status_sync_mode == "incremental" and \
                isinstance(provider, IncrementalStatus):
            await self._run_incremental(provider)
            return
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

    async def _run_incremental(self, provider: IncrementalStatus) -> None:
        resync: asyncio.Task[None] | None = None
        # The previous poll's writes, still going while the next poll reads ECI: a poll that
        # found hundreds of changes (a burst of starts) takes seconds to write them, and the
        # changes meanwhile must not wait for that before they are even read. Writes stay in
        # poll order: a poll's writes start only once the previous poll's have ended, so an
        # older status never lands after a newer one.
        writing: asyncio.Task[None] | None = None
        next_full = 0.0
        try:
            while True:
                started = time.monotonic()
                if self._write_failed:
                    # A change whose write failed (API server down) is not reported again by
                    # the delta poll: a full listing re-derives it, soon but not at once, so
                    # an outage costs at most one listing per quarter of the resync interval.
                    self._write_failed = False
                    next_full = min(next_full, started + self.settings.status_resync_interval / 4)
                if started >= next_full and (resync is None or resync.done()):
                    # A full listing takes seconds at thousands of pods: beside the polls.
                    next_full = started + self.settings.status_resync_interval
                    resync = asyncio.create_task(self._resync(provider))
                try:
                    changes = await provider.changed_pods()
                    if changes is not None:  # None: no listing yet, the resync starts them
                        self._note_polled(changes, started)
                        if writing is not None:
                            await writing
                        writing = asyncio.create_task(self._apply_beside(changes))
                except Exception as e:  # a failed poll is retried on the next tick
                    pods_logger.warning("status poll failed: %s", e)
                await self._pause(started, provider)
        finally:
            for task in (resync, writing):
                if task is not None:
                    task.cancel()

    def _note_polled(self, changes: list[StatusChange], started: float) -> None:
        if self._resync_began is not None and started >= self._resync_began:
            self._polled.update(object_key(c.pod) for c in changes)

    async def _apply_beside(self, changes: list[StatusChange]) -> None:
        """:meth:`apply` as the task beside the polls: a failure is its own (logged here), not
        the next poll's, and brings the next full listing forward, since the poller counts
        these changes as applied and will not report them again."""
        try:
            await self.apply(changes)
        except Exception as e:
            self._write_failed = True
            pods_logger.warning("status writes of a poll failed: %s", e)

    async def _resync(self, provider: IncrementalStatus) -> None:
        """Full listing: write what the polls missed, count pods whose group is missing."""
        self._resync_began, self._polled = time.monotonic(), set()
        try:
            self.cycles += 1
            self.pods.metrics.status_sync_cycles.inc()
            changes, present = await provider.resync(self._settled)
            work = self._matching(changes)
            for i in range(0, len(work), _RESYNC_SLICE):
                # Thousands of pods: in slices, so that the polls run between them. A pod a
                # poll read after the listing began is the poll's (see __init__).
                await self._write_all([item for item in work[i:i + _RESYNC_SLICE]
                                       if item[0] not in self._polled])
            cache = self.pods.informer.cache
            for key, pod in list(cache.items()):
                if key in present:
                    self._found(key, pod)
                else:
                    await self._missing(key, pod)
            self._count_phases()
            self._forget(cache)
        except Exception as e:  # retried at the next resync, never fatal
            pods_logger.warning("status resync failed: %s", e)
        finally:
            self._resync_began, self._polled = None, set()

    def _settled(self, key: str, uid: str | None, fingerprint: int) -> bool:
        pod = self.pods.informer.cache.get(key)
        return pod is not None and self._agreed.get(key) == hash(
            (uid, pod.metadata.resource_version, fingerprint))

    async def _pause(self, started: float, provider: IncrementalStatus) -> None:
        """Until the next poll: the fast interval while a pod starts or stops, else the slow
        one, cut short (to the fast one) when the pod controller pokes."""
        if not provider.busy():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, started + self.settings.status_poll_interval
                                               - time.monotonic())):
                    await self._poke.wait()
        self._poke.clear()
        await asyncio.sleep(max(0.0, started + self.settings.status_poll_fast_interval
                                - time.monotonic()))

    async def apply(self, changes: list[StatusChange]) -> None:
        """Write the statuses of the pods the provider reports as changed (if they did)."""
        self.polls += 1
        self.pods.metrics.status_polls.inc()
        await self._write_all(self._matching(changes))
        if time.monotonic() - self._counted_at >= _GAUGE_EVERY:
            self._count_phases()

    def _matching(self, changes: list[StatusChange]) -> list[_Work]:
        """The changes whose pod (same UID) the informer has, with that pod."""
        cache = self.pods.informer.cache
        work = []
        for change in changes:
            key = object_key(change.pod)
            pod = cache.get(key)
            if pod is not None and change.pod.metadata.uid in (None, pod.metadata.uid):
                work.append((key, pod, change.pod, change.not_before, change.fingerprint))
        return work

    async def _write_all(self, work: list[_Work]) -> None:
        sem = asyncio.Semaphore(_WRITE_CONCURRENCY)

        async def one(key: str, pod: Any, cloud_pod: Any, not_before: float | None,
                      fingerprint: int | None) -> None:
            async with sem:
                try:
                    await self._sync_one(key, pod, cloud_pod, not_before, fingerprint)
                except Exception as e:
                    self._write_failed = True
                    pods_logger.warning("status of %s not written: %s", key, e,
                                        extra={"pod": key})

        await asyncio.gather(*(one(*item) for item in work))

    def _count_phases(self) -> None:
        self._counted_at = time.monotonic()
        phases: Counter[str] = Counter((p.status and p.status.phase) or "Pending"
                                       for p in self.pods.informer.cache.values())
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            self.pods.metrics.pods.labels(phase=phase).set(phases.get(phase, 0))

    async def cycle(self) -> None:
        self.cycles += 1
        self.pods.metrics.status_sync_cycles.inc()
        # One get_pods() per cycle is one fresh listing (the ECI provider: ceil(groups/20)
        # DescribeContainerGroups); nothing here asks the provider per pod.
        cloud = await self.pods.provider.get_pods()
        by_key = {object_key(p): p for p in cloud}
        cache = self.pods.informer.cache
        await self._write_all([(key, pod, by_key.get(key), None, None)
                               for key, pod in list(cache.items())])
        self._count_phases()
        self._forget(cache)

    def _forget(self, cache: dict[str, Any]) -> None:
        """Drop what we remember of pods the informer no longer has."""
        for key in [k for k in self._phase_written if k not in cache]:
            del self._phase_written[key]
        for key in [k for k in self._agreed if k not in cache]:
            del self._agreed[key]
        for key in [k for k, (uid, version, _) in self._sent.items()
                    if (p := cache.get(k)) is None or p.metadata.uid != uid
                    or p.metadata.resource_version != version]:
            del self._sent[key]

    async def _sync_one(self, key: str, pod: Any, cloud_pod: Any,
                        not_before: float | None = None,
                        fingerprint: int | None = None) -> None:
        t = self.pods.tracked.get(key)
        if cloud_pod is None or (cloud_pod.metadata.uid
                                 and cloud_pod.metadata.uid != pod.metadata.uid):
            await self._missing(key, pod)
            return
        self._found(key, pod)
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
        # What ECI allocated (instance, spec, zone, addresses) rides on the same patch.
        allocation = missing_allocation(pod.metadata.annotations,
                                        cloud_pod.metadata.annotations or {})
        target = comparable(wanted)
        if target == comparable(have) and not allocation:
            self._sent.pop(key, None)
            if fingerprint is not None:
                self._agreed[key] = hash((pod.metadata.uid, pod.metadata.resource_version,
                                          fingerprint))
            return
        self._agreed.pop(key, None)
        version = pod.metadata.resource_version
        digest = hash(repr((target, sorted(allocation.items()))))
        if self._sent.get(key) == (pod.metadata.uid, version, digest):
            # Written already; the informer has not shown it yet (a poll and a resync, or two
            # polls, meeting the same change while the watch lags under load).
            return
        # null clears a field the provider no longer reports (e.g. ProviderFailed reason).
        for name in ("reason", "message"):
            wanted.setdefault(name, None)
        for cond in wanted.get("conditions") or []:
            # Conditions are merged by type: a condition that turned True must say null to
            # drop its old reason and message, or the pod keeps "ContainersNotReady" beside
            # status True and every later comparison asks for the same write again.
            cond.setdefault("reason", None)
            cond.setdefault("message", None)
        # Marked before the write, not after: a poll and a resync slice run side by side, and
        # the second must not write the same status while the first one's write is in flight.
        sent = (pod.metadata.uid, version, digest)
        self._sent[key] = sent
        written = False
        try:
            written = await self.pods.patch_status(pod, wanted, allocation)
        finally:
            if not written and self._sent.get(key) == sent:
                del self._sent[key]  # not written (gone, or failed): a later pass may write it
        if written:
            self.writes += 1
            self.pods.metrics.pod_status_writes.inc()
            self._observe_lag(key, pod.metadata.uid, wanted, not_before)
            if (wanted.get("phase") == "Running" and t is not None and not t.started
                    and t.uid == pod.metadata.uid):
                t.started = True
                self.pods.metrics.pod_start_duration.labels(
                    cache_result=cache_result(pod)).observe(
                    time.monotonic() - t.first_seen)

    async def _missing(self, key: str, pod: Any) -> None:
        """A full listing lacks the group of ``pod``: Failed after MISSING_CYCLES in a row."""
        t = self.pods.tracked.get(key)
        current_phase = pod.status.phase if pod.status else None
        if (t is not None and t.created and t.uid == pod.metadata.uid
                and pod.metadata.deletion_timestamp is None
                and current_phase not in TERMINAL):
            t.missing += 1
            if t.missing >= MISSING_CYCLES:
                await self._vanished(key, pod)

    def _found(self, key: str, pod: Any) -> None:
        t = self.pods.tracked.get(key)
        if t is not None and t.uid == pod.metadata.uid:
            t.missing = 0
            t.created = True
            if t.create_seconds is not None:
                self.pods.metrics.pod_create_duration.labels(
                    cache_result=cache_result(pod)).observe(t.create_seconds)
                t.create_seconds = None

    def _observe_lag(self, key: str, uid: str, wanted: dict[str, Any],
                     not_before: float | None) -> None:
        """Once per new phase of a pod: how long after ECI's transition we wrote it."""
        phase = str(wanted.get("phase") or "")
        if not phase or self._phase_written.get(key) == (uid, phase):
            return
        self._phase_written[key] = (uid, phase)
        at = transition_time(wanted)
        if at is None:
            return
        if not_before is not None:
            at = max(at, not_before)
        self.pods.metrics.pod_status_lag.labels(phase=phase).observe(
            max(0.0, time.time() - at))

    async def _vanished(self, key: str, pod: Any) -> None:
        message = ("the ECI container group of this pod no longer exists "
                   "(deleted outside the node, or expired)")
        pods_logger.warning("container group of %s vanished; marking the pod Failed", key,
                            extra={"pod": key})
        await self.pods.recorder.record(pod, "Warning", VANISHED, message)
        await self.pods.patch_status(pod, {"phase": "Failed", "reason": VANISHED,
                                           "message": message})


def _epoch(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def transition_time(status: dict[str, Any]) -> float | None:
    """When ECI says the pod entered its phase (epoch seconds; ECI's whole seconds): the last
    container start for Running, the last container end for Succeeded/Failed, the group's
    creation (the PodScheduled condition's time) for Pending. None when ECI gives no time."""
    phase = status.get("phase")
    containers = status.get("containerStatuses") or []
    times: list[float | None]
    if phase == "Running":
        times = [_epoch(((c.get("state") or {}).get("running") or {}).get("startedAt"))
                 for c in containers]
    elif phase in ("Succeeded", "Failed"):
        times = [_epoch(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                 for c in containers]
    elif phase == "Pending":
        times = [_epoch(c.get("lastTransitionTime")) for c in status.get("conditions") or []
                 if c.get("type") == "PodScheduled"]
    else:
        return None
    present = [t for t in times if t is not None]
    return max(present) if present else None
