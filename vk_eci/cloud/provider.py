"""``EciProvider``: the :class:`vk_eci.provider.PodLifecycleHandler` for ECI.

Creates translate the pod (objects it refers to fetched through
:class:`vk_eci.provider.PodResources`) and carry ``ClientToken`` = pod UID; a repeated create
that ECI answers with ``IdempotentParameterMismatch`` (or "already exists") is success once the
group is found by its tags. Statuses come from one cache of every group tagged for this
cluster + node, filled by :meth:`EciProvider.refresh` (``ceil(groups/20)``
``DescribeContainerGroups`` calls, events included) and never by a call per pod.
:meth:`EciProvider.run` refreshes on an interval and soon after :meth:`request_refresh`; each
changed status is pushed to the callbacks of :meth:`notify_pods`, and new ECI events are copied
onto pods through the :class:`vk_eci.provider.EventRecorder`. Between listings,
:meth:`EciProvider.changed_pods` asks ECI only for the groups whose status changed
(:mod:`vk_eci.cloud.groups.poll`) and fetches just those, 20 a call, events included.

Deletion calls ``DeleteContainerGroup``; ECI itself gives the containers the pod's
``terminationGracePeriodSeconds`` (sent at creation) between SIGTERM and SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes_asyncio.client import V1Pod, V1PodStatus

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient
from vk_eci.cloud.api.errors import EciError, InvalidInput, MissingDependency, NotFound, Permanent
from vk_eci.cloud.groups import spot
from vk_eci.cloud.groups.poll import StatusPoller
from vk_eci.cloud.groups.status import GroupEvent, group_events, group_to_pod_status, status_changed
from vk_eci.cloud.groups.view import MOVING, pod_from_group
from vk_eci.cloud.groups.view import carries as _carries
from vk_eci.cloud.groups.view import group_key as _group_key
from vk_eci.cloud.groups.view import key as _key
from vk_eci.cloud.groups.view import prefer as _prefer
from vk_eci.cloud.groups.view import tag as _tag
from vk_eci.cloud.groups.view import tags as _tags
from vk_eci.cloud.placement.annotations import check_placement, parse_placement
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.translation.context import CacheDecision, TranslateContext, gather
from vk_eci.cloud.translation.pod import translate
from vk_eci.log import cloud_logger
from vk_eci.metrics import Metrics
from vk_eci.provider import EventRecorder, Pod, PodResources, PodStatus, StatusChange

_DUPLICATE_CODES = ("IdempotentParameterMismatch", "ContainerGroup.AlreadyExist",
                    "InvalidContainerGroupName.Duplicate", "ContainerGroupName.Duplicate")

CacheDecider = Callable[[Pod], Awaitable[CacheDecision]]
StatusCallback = Callable[[Pod], Awaitable[None]]


@dataclass(frozen=True)
class ProviderSettings:
    """Where this node's groups go and how it names them."""

    placement: Placement
    cluster_name: str
    node_name: str
    cpu_architecture: str | None = None  # AMD64 | ARM64 sent as CpuArchitecture
    cluster_dns: Sequence[str] = ()  # the kubelet's --cluster-dns (dnsPolicy ClusterFirst)
    cluster_domain: str = "cluster.local"
    refresh_interval: float = 5.0  # seconds between status refreshes
    refresh_debounce: float = 0.2  # requested refreshes within this window share one listing
    # A group counts as moving (see busy()) for at most this long after it was created,
    # deleted or first seen in a moving status: a pod stuck in Pending must not keep the
    # node polling fast for ever.
    moving_for: float = 300.0

    def base_context(self) -> TranslateContext:
        return TranslateContext(placement=self.placement,
                                cluster_name=self.cluster_name, node_name=self.node_name,
                                cluster_dns=tuple(self.cluster_dns),
                                cluster_domain=self.cluster_domain,
                                cpu_architecture=self.cpu_architecture)


@dataclass
class _Known:
    """A pod this provider created or was told about, and what was last pushed for it."""

    pod: Pod
    created_at: float | None = None  # monotonic time the create call returned
    group_id: str | None = None
    last_status: Any = None
    seen_events: set[tuple[str, str, str, int]] = field(default_factory=set)


_YIELD_EVERY = 200  # pods walked between yields to the event loop


class EciProvider:
    """See the module docstring."""

    def __init__(self, client: EciClient, settings: ProviderSettings, resources: PodResources,
                 *, events: EventRecorder | None = None,
                 cache_decider: CacheDecider | None = None,
                 metrics: Metrics | None = None) -> None:
        self.client = client
        self.metrics = metrics
        self._preempted: set[str] = set()  # group ids whose SpotToBeReleased was counted
        self.settings = settings
        self.resources = resources
        self.events = events
        self.cache_decider = cache_decider
        # Told each listed group's ECI events (issue 11: the cache ECI says it used).
        self.on_group_events: Callable[[Pod, list[GroupEvent]], Awaitable[None]] | None = None
        self._groups: dict[str, Any] = {}  # by pod key (group_key): the live (or newest) one
        self._listed: dict[str, Any] = {}  # every group of the last listing, by id
        self._deleted: set[str] = set()  # group ids whose deletion ECI accepted
        self._known: dict[str, _Known] = {}  # by pod key (see group_view.key)
        self._callbacks: list[StatusCallback] = []
        self._refreshed_at: float | None = None  # monotonic start of the last full listing
        self._wake = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self.refresh_count = 0
        self._mine = naming.node_tags(settings.cluster_name, settings.node_name)
        self._poller = StatusPoller(client, self._mine)
        self._moving: dict[str, float] = {}  # pod key -> monotonic time it started moving
        self._events_lock = asyncio.Lock()
        # Monotonic time each cached group was fetched, and groups the polls found gone: a
        # listing that began earlier must not bring back an older state.
        self._fetched: dict[str, float] = {}
        self._dropped: dict[str, float] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()

    # ---- PodLifecycleHandler --------------------------------------------------------------

    async def create_pod(self, pod: Pod) -> None:
        placement = parse_placement(pod.metadata.annotations)
        for problem in placement.problems:
            await self._warn(pod, "InvalidAnnotation", problem.message())
        check_placement(placement)
        ctx = await gather(pod, self.resources, self.settings.base_context())
        if self.cache_decider is not None:
            ctx = replace(ctx, cache=await self.cache_decider(pod))
        try:
            translation = translate(pod, ctx)
        except (MissingDependency, InvalidInput) as err:
            # A missing dependency is retried (the object is often created just after the pod),
            # but never silently; both carry the event reason Kubernetes tooling looks for.
            if err.event:
                await self._warn(pod, err.event, str(err))
            raise
        # What the pod asks for and ECI will not get is skipped or folded as the kubelet would,
        # but said as a Warning and a log line, never dropped unsaid.
        for warning in translation.warnings:
            await self._warn(pod, warning.reason, warning.message)
        key = _key(pod.metadata.namespace, pod.metadata.name)
        known = self._known.setdefault(key, _Known(pod))
        known.pod = pod
        try:
            group_id = await self.client.create_container_group(translation.request)
        except Permanent as err:
            if not err.code.startswith(_DUPLICATE_CODES):
                raise
            group = await self._find_group(pod)
            if group is None:
                raise
            group_id = group.container_group_id
            cloud_logger.info("container group %s already exists for pod", group_id,
                              extra={"pod": f"{pod.metadata.namespace}/{pod.metadata.name}"})
        known.group_id = group_id
        known.created_at = time.monotonic()
        self._moving[key] = known.created_at
        self.request_refresh()

    async def _warn(self, pod: Pod, reason: str, message: str) -> None:
        cloud_logger.warning(message, extra={
            "pod": f"{pod.metadata.namespace}/{pod.metadata.name}", "reason": reason})
        if self.events is not None:
            await self.events.record(pod, "Warning", reason, message)

    async def _find_group(self, pod: Pod) -> Any | None:
        """The group of this very pod (its namespace, name and UID tags, whatever its name)."""
        meta = pod.metadata
        namespace, uid = meta.namespace or "default", meta.uid
        groups = await self.client.describe_container_groups(tags=naming.pod_tags(
            self.settings.cluster_name, self.settings.node_name, namespace, meta.name, uid))
        for group in groups:
            if _carries(group, self._mine) and naming.belongs_to(_tags(group), namespace,
                                                                 meta.name, uid):
                return group
        return None

    async def update_pod(self, pod: Pod) -> None:
        # ECI cannot change a running group in the ways Kubernetes allows (image, labels…);
        # keep the newest pod so that statuses and events go to its current version.
        key = _key(pod.metadata.namespace, pod.metadata.name)
        known = self._known.get(key)
        if known is not None:
            known.pod = pod

    async def delete_pod(self, pod: Pod) -> None:
        key = _key(pod.metadata.namespace, pod.metadata.name)
        uid = pod.metadata.uid
        known = self._known.get(key)
        group = self._groups.get(key)
        group_id = (group.container_group_id if group is not None
                    and _tag(group, naming.TAG_POD_UID) in (None, uid) else None)
        if group_id is None and known is not None and known.pod.metadata.uid == uid:
            group_id = known.group_id
        if group_id is None:
            found = await self._find_group(pod)
            group_id = found.container_group_id if found is not None else None
        if group_id is not None and group_id not in self._deleted:
            # Already gone is fine: deleting an absent pod is not an error.
            with contextlib.suppress(NotFound):
                await self.client.delete_container_group(group_id)
            # The group stays listed (Terminating) until ECI ends it, so the caller can watch
            # the grace period pass through get_pod_status; a second delete is not sent.
            self._deleted.add(group_id)
        if known is not None and known.pod.metadata.uid == uid:
            known.created_at = None
        self._moving[key] = time.monotonic()
        self.request_refresh()

    async def get_pod(self, namespace: str, name: str) -> Pod | None:
        key = _key(namespace, name)
        group = self._groups.get(key)
        known = self._known.get(key)
        if group is None:
            if known is None or not self._awaiting_listing(known):
                return None
            # Created, not listed yet: still what the pod says (Pending when it says nothing).
            return V1Pod(api_version="v1", kind="Pod", metadata=known.pod.metadata,
                         spec=known.pod.spec,
                         status=known.pod.status or V1PodStatus(phase="Pending"))
        pod = known.pod if known is not None else pod_from_group(group)
        copy = V1Pod(api_version="v1", kind="Pod", metadata=pod.metadata, spec=pod.spec,
                     status=group_to_pod_status(group, pod))
        return copy

    async def get_pod_status(self, namespace: str, name: str) -> PodStatus | None:
        pod = await self.get_pod(namespace, name)
        return pod.status if pod is not None else None

    def pod_status(self, pod: Pod) -> PodStatus | None:
        """Status of ``pod`` from the cache (None: no group, after a listing that would show
        it); the pod's own status while its just-created group awaits the next listing."""
        key = _key(pod.metadata.namespace, pod.metadata.name)
        group = self._groups.get(key)
        if group is not None and _tag(group, naming.TAG_POD_UID) in (None, pod.metadata.uid):
            return group_to_pod_status(group, pod)
        known = self._known.get(key)
        if known is not None and self._awaiting_listing(known):
            return pod.status or V1PodStatus(phase="Pending")
        return None

    async def get_pods(self) -> list[Pod]:
        """Every pod this node runs in ECI, from one fresh listing (``ceil(groups/20)``
        calls). Groups sharing a name (a pod re-created under the same name) all appear, the
        live or newest one last, so that a dict by name keeps that one."""
        await self.refresh()
        preferred = {id(g) for g in self._groups.values()}
        ordered = [g for g in self._listed.values() if id(g) not in preferred] + list(
            self._groups.values())
        return [self._pod_for(g) for g in ordered]

    def _pod_for(self, group: Any) -> Pod:
        known = self._known.get(_group_key(group))
        uid = _tag(group, naming.TAG_POD_UID)
        if known is not None and known.pod.metadata.uid == uid:
            return V1Pod(api_version="v1", kind="Pod", metadata=known.pod.metadata,
                         spec=known.pod.spec, status=group_to_pod_status(group, known.pod))
        return pod_from_group(group)

    def groups(self) -> list[Any]:
        """Every group of this node as last listed (start-up reconciliation)."""
        return list(self._listed.values())

    # ---- PodStatusNotifier ----------------------------------------------------------------

    def notify_pods(self, callback: Any) -> None:
        self._callbacks.append(callback)

    # ---- the batched status cache ---------------------------------------------------------

    def _awaiting_listing(self, known: _Known) -> bool:
        return known.created_at is not None and (
            self._refreshed_at is None or self._refreshed_at < known.created_at)

    def request_refresh(self) -> None:
        """Make :meth:`run` refresh soon (after the debounce window)."""
        self._wake.set()

    async def refresh(self) -> list[Any]:
        """List every group tagged for this cluster + node (with events) and push changes;
        returns the groups whose status differs from what the cache held.

        The listing (``ceil(groups/20)`` calls: seconds at thousands of groups) holds no lock,
        so polls go on meanwhile; what they fetched or found gone after the listing began is
        newer than the listing and wins over it."""
        started = time.monotonic()
        sent = time.time()
        listed = [g for g in await self.client.describe_container_groups(
            tags=self._mine, with_event=True) if _carries(g, self._mine)]
        async with self._refresh_lock:
            by_id = {g.container_group_id: g for g in listed}
            for gid, at in self._fetched.items():
                if at > started and gid in self._listed:
                    by_id[gid] = self._listed[gid]
            for gid in [g for g, at in self._dropped.items() if at > started]:
                by_id.pop(gid, None)
            self._dropped = {g: at for g, at in self._dropped.items() if at > started}
            groups: dict[str, Any] = {}
            for group in by_id.values():
                name = _group_key(group)
                if _prefer(groups.get(name), group):
                    groups[name] = group
            changed = [g for name, g in groups.items()
                       if _signature(self._groups.get(name)) != _signature(g)]
            self._fetched = {gid: self._fetched.get(gid, started) if self._fetched.get(
                gid, 0) > started else started for gid in by_id}
            self._groups = groups
            self._listed = by_id
            live = set(self._listed)
            self._deleted &= live
            self._poller.reset(sent)
            self._poller.forget(live)
            for name in [n for n in self._moving if n not in groups and not self._awaiting(n)]:
                del self._moving[name]
            for name, group in groups.items():
                self._note_moving(name, group)
            self._preempted &= live
            self._refreshed_at = started
            self.refresh_count += 1
            # Forget pods whose group is gone (deleted or vanished) and is not just created.
            for key, known in list(self._known.items()):
                if key not in groups and not self._awaiting_listing(known):
                    del self._known[key]
        await self._push(groups)
        return changed

    async def resync(self) -> tuple[list[StatusChange], set[str]]:
        """A full listing: every pod's status as ECI has it now, and the ``namespace/name`` of
        every pod that has a group. Every pod, not only those whose group changed since our
        previous view: that view may never have reached Kubernetes (a write that failed, a
        predecessor that died between ECI's change and its write); the caller writes only the
        statuses that differ from the pods'."""
        await self.refresh()
        present = set()
        for name, group in self._groups.items():
            known = self._known.get(name)
            meta = known.pod.metadata if known is not None else None
            present.add(f"{meta.namespace}/{meta.name}" if meta is not None else
                        f"{_tag(group, naming.TAG_NAMESPACE) or 'default'}/"
                        f"{_tag(group, naming.TAG_POD_NAME) or name}")
        changes = []
        for i, group in enumerate(list(self._groups.values())):
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # thousands of pods: let the polls run meanwhile
            changes.append(StatusChange(self._pod_for(group)))
        return changes, present

    async def changed_pods(self) -> list[StatusChange] | None:
        """Pods whose group changed since the previous call: one ``DescribeContainerGroupStatus``
        (more pages only with more than 200 changes) plus ``DescribeContainerGroups`` of just
        the changed groups, 20 a call. None: the previous poll is too old (or there was none),
        so the caller should list everything (:meth:`get_pods`)."""
        async with self._refresh_lock:
            poll = await self._poller.poll(watch=sorted(self._deleted))
            if not poll.complete:
                return None
            self._drop(poll.gone)
            fetch_started = time.monotonic()
            try:
                fetched = await self.client.describe_container_groups(ids=poll.changed,
                                                                      with_event=True)
            except EciError:
                self._poller.failed(poll)
                raise
            self._poller.applied(poll)
            merged = []
            for group in (g for g in fetched if _carries(g, self._mine)):
                name = _group_key(group)
                self._listed[group.container_group_id] = group
                self._fetched[group.container_group_id] = fetch_started
                prev = self._groups.get(name)
                if prev is not None and prev.container_group_id != group.container_group_id \
                        and not _prefer(prev, group):
                    continue
                self._groups[name] = group
                known = self._known.get(name)
                if known is not None:
                    known.created_at = None  # listed now
                self._note_moving(name, group)
                merged.append(group)
        for group in merged:
            known = self._known.get(_group_key(group))
            if known is not None:
                self._count_preemption(known, group)
        if self.events is not None and merged:
            # Events are copied beside the status writes, not before them: a burst of starts
            # has several events per pod, and the statuses must not wait for those writes.
            task = asyncio.create_task(self._copy_events_of(merged))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)
        return [StatusChange(self._pod_for(group), poll.not_before) for group in merged]

    async def _copy_events_of(self, groups: list[Any]) -> None:
        async with self._events_lock:  # one copier at a time: each event is copied once
            for group in groups:
                known = self._known.get(_group_key(group))
                if known is None or _tag(group, naming.TAG_POD_UID) not in (
                        None, known.pod.metadata.uid):
                    continue
                try:
                    await self._copy_events(known, group_events(group))
                except Exception:  # tried again with the group's next change or listing
                    cloud_logger.exception("copying ECI events failed", extra={
                        "pod": f"{known.pod.metadata.namespace}/{known.pod.metadata.name}"})

    def _drop(self, gone: list[str]) -> None:
        """Forget groups ECI no longer has (their pods then read as gone)."""
        for gid in gone:
            self._dropped[gid] = time.monotonic()
            self._fetched.pop(gid, None)
            group = self._listed.pop(gid, None)
            self._deleted.discard(gid)
            name = _group_key(group) if group is not None else ""
            current = self._groups.get(name)
            if current is not None and current.container_group_id == gid:
                del self._groups[name]
                self._moving.pop(name, None)
                known = self._known.get(name)
                if known is not None and not self._awaiting_listing(known):
                    del self._known[name]  # as a listing without the group would

    def busy(self) -> bool:
        """Whether a group of this node is starting or stopping (created, deleted or in a
        moving ECI status, within ``moving_for``)."""
        now = time.monotonic()
        for name, since in list(self._moving.items()):
            if now - since > self.settings.moving_for:
                del self._moving[name]
        return bool(self._moving)

    def _note_moving(self, name: str, group: Any) -> None:
        if group.status in MOVING:
            self._moving.setdefault(name, time.monotonic())
        elif name in self._moving and not self._awaiting(name):
            del self._moving[name]

    def _awaiting(self, name: str) -> bool:
        known = self._known.get(name)
        return known is not None and self._awaiting_listing(known)

    async def _push(self, groups: dict[str, Any]) -> None:
        async with self._events_lock:
            await self._push_locked(groups)

    async def _push_locked(self, groups: dict[str, Any]) -> None:
        for i, (key, known) in enumerate(list(self._known.items())):
            if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                # Thousands of pods: let the status polls run between slices of this walk.
                await asyncio.sleep(0)
            group = groups.get(key)
            if group is None or _tag(group, naming.TAG_POD_UID) not in (None,
                                                                        known.pod.metadata.uid):
                continue
            if self.events is not None:
                await self._copy_events(known, group_events(group))
            self._count_preemption(known, group)
            if not self._callbacks:
                continue  # nobody to push statuses to (the node reads them itself)
            status = group_to_pod_status(group, known.pod)
            if known.last_status is not None and not status_changed(known.last_status, status):
                continue
            known.last_status = status
            pod = V1Pod(api_version="v1", kind="Pod", metadata=known.pod.metadata,
                        spec=known.pod.spec, status=status)
            for callback in self._callbacks:
                try:
                    await callback(pod)
                except Exception:  # one failing consumer must not stop the others
                    cloud_logger.exception("status callback failed",
                                           extra={"pod": f"{pod.metadata.namespace}/"
                                                         f"{pod.metadata.name}"})

    def _count_preemption(self, known: _Known, group: Any) -> None:
        gid = group.container_group_id or ""
        if gid in self._preempted or not spot.warned(group):
            return
        self._preempted.add(gid)
        cloud_logger.warning("ECI will reclaim spot container group %s", gid, extra={
            "pod": f"{known.pod.metadata.namespace}/{known.pod.metadata.name}",
            "reason": spot.WARNING_REASON})
        if self.metrics is not None:
            self.metrics.spot_preemptions.inc()

    async def _copy_events(self, known: _Known, events: list[GroupEvent]) -> None:
        assert self.events is not None
        if self.on_group_events is not None:
            try:
                await self.on_group_events(known.pod, events)
            except Exception:  # a reporting problem must not stop copying the events
                cloud_logger.exception("reading the group's events failed")
        # (cluster-side edit) ECI names an event after its group, so the message is part of its
        # identity (two containers' "Pulling" events differ only there). A recorder with
        # ``record_copy`` (KubeEventRecorder) writes the copy under a name derived from that
        # identity with ECI's count, so a restarted node (empty seen_events) does not copy it again.
        copy = getattr(self.events, "record_copy", None)
        for event in events:
            seen = (event.name, event.reason, event.message, event.count)
            if seen in known.seen_events:
                continue
            if copy is None:
                await self.events.record(known.pod, event.type, event.reason, event.message)
            elif not await copy(known.pod, event.type, event.reason, event.message,
                                key=f"{event.name}/{event.reason}/{event.message}",
                                count=event.count, first=event.first, last=event.last):
                continue  # not written: tried again on the next refresh
            known.seen_events.add(seen)

    def track(self, pod: Pod) -> None:
        """Follow ``pod`` (one this node runs but did not create in this process, e.g. after a
        restart) so that its status changes and events are pushed."""
        key = _key(pod.metadata.namespace, pod.metadata.name)
        known = self._known.setdefault(key, _Known(pod))
        known.pod = pod

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Refresh every ``refresh_interval`` and soon after each :meth:`request_refresh`,
        until ``stop`` is set (or the task is cancelled). Errors are logged and retried on the
        next tick; they never end the loop."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.refresh()
            except EciError as err:
                cloud_logger.warning("status refresh failed: %s", err)
            try:
                async with asyncio.timeout(self.settings.refresh_interval):
                    await self._wake.wait()
                await asyncio.sleep(self.settings.refresh_debounce)
            except TimeoutError:
                pass
            self._wake.clear()


def _signature(group: Any | None) -> Any:
    """What of a group shows in its pod's status (phase, IP, container states), comparable."""
    if group is None:
        return None
    containers = [*(group.containers or []), *(group.init_containers or [])]
    return (group.status, group.intranet_ip, group.succeeded_time, group.failed_time,
            [(c.name, c.ready, c.restart_count,
              c.current_state.to_map() if c.current_state is not None else None,
              c.previous_state.to_map() if c.previous_state is not None else None)
             for c in containers])
