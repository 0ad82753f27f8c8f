"""The batched status cache of the provider (:class:`GroupListing`) and the reads it serves.

:meth:`GroupListing.refresh` lists every group tagged for this cluster + node
(``ceil(groups/20)`` ``DescribeContainerGroups`` calls, events included);
:meth:`GroupListing.changed_pods` asks ECI only for the groups whose status changed
(:mod:`vk_eci.cloud.groups.poll`) and fetches just those; :meth:`GroupListing.run` refreshes on
an interval and soon after ``request_refresh``. ``get_pod``, ``pod_status`` and ``get_pods``
answer from this cache, never with a call per pod. Apart from the creation path
(:mod:`vk_eci.cloud.provider`) because keeping the cache consistent with concurrent polls and
listings is a concern of its own.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from kubernetes_asyncio.client import V1Pod, V1PodStatus

from vk_eci.cloud import provider_pending as pending
from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import EciError
from vk_eci.cloud.api.reuse import Reuse
from vk_eci.cloud.groups.allocated import allocated
from vk_eci.cloud.groups.follow import BATCH as FOLLOW_BATCH
from vk_eci.cloud.groups.status import group_to_pod_status
from vk_eci.cloud.groups.view import carries as _carries
from vk_eci.cloud.groups.view import group_key as _group_key
from vk_eci.cloud.groups.view import key as _key
from vk_eci.cloud.groups.view import pod_from_group
from vk_eci.cloud.groups.view import prefer as _prefer
from vk_eci.cloud.groups.view import tag as _tag
from vk_eci.cloud.provider_push import StatusPush
from vk_eci.cloud.provider_state import YIELD_EVERY, Known
from vk_eci.log import cloud_logger
from vk_eci.provider import Pod, PodStatus, Settled, StatusChange

# What the cache never reads of a group, so does not hold for every pod: its volumes (with the
# contents of their files, a service-account token among them) and its containers' environment.
NOT_KEPT = frozenset({"volumes", "environment_vars"})


class GroupListing(StatusPush):
    """The cache of this node's groups and the reads it serves; see the module docstring."""

    # ---- reads of PodLifecycleHandler -----------------------------------------------------

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
            # A copy of the metadata carrying what ECI allocated: the status sync writes those
            # annotations with the status (cloud/groups/allocated.py).
            meta = copy.copy(known.pod.metadata)
            meta.annotations = {**(meta.annotations or {}), **allocated(group)}
            return V1Pod(api_version="v1", kind="Pod", metadata=meta, spec=known.pod.spec,
                         status=self._pending_limit(known, group) or group_to_pod_status(
                             group, known.pod))
        return pod_from_group(group)

    def _pending_limit(self, known: Known, group: Any) -> PodStatus | None:
        """The Failed status of a pod whose group stayed Pending past its
        ``eci-max-pending-minute`` (its group then deleted, once); None while within it."""
        if known.timed_out is not None:
            return known.timed_out
        limit = pending.limit_seconds(known.pod)
        if limit is None:
            return None
        now = self.clock()
        known.pending_since = pending.pending_since(group, known.pending_since, now)
        if known.pending_since is None or now - known.pending_since < limit:
            return None
        known.timed_out = pending.timed_out(group, limit / 60)
        task = asyncio.create_task(self._expire(known.pod, known.timed_out.message))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)
        return known.timed_out

    async def delete_pod(self, pod: Pod) -> None:
        """Stop ``pod``'s group (the creation path, :class:`vk_eci.cloud.provider.EciProvider`,
        implements it)."""
        raise NotImplementedError

    async def _expire(self, pod: Pod, message: str) -> None:
        cloud_logger.warning(message, extra={"pod": f"{pod.metadata.namespace}/"
                                                    f"{pod.metadata.name}"})
        if self.events is not None:
            await self.events.record(pod, "Warning", pending.REASON, message)
        try:
            await self.delete_pod(pod)
        except EciError as err:  # the pod is Failed anyway; the next resync sees the group
            cloud_logger.warning("deleting the timed-out group failed: %s", err)

    def groups(self) -> list[Any]:
        """Every group of this node as last listed (start-up reconciliation)."""
        return list(self._listed.values())

    # ---- the batched status cache ---------------------------------------------------------

    async def refresh(self) -> list[Any]:
        """List every group tagged for this cluster + node (with events) and push changes;
        returns the groups whose status differs from what the cache held.

        The listing (``ceil(groups/20)`` calls: seconds at thousands of groups) holds no lock,
        so polls go on meanwhile; what they fetched or found gone after the listing began is
        newer than the listing and wins over it."""
        started = time.monotonic()
        sent = time.time()
        reuse = Reuse(self._held)
        listed = [g for g in await self.client.describe_container_groups(
            tags=self._mine, with_event=True, omit=NOT_KEPT, reuse=reuse)
            if _carries(g, self._mine)]
        async with self._refresh_lock:
            by_id = {g.container_group_id: g for g in listed}
            prints = {gid: reuse.prints[gid] for gid in by_id if gid in reuse.prints}
            for gid, at in self._fetched.items():
                if at > started and gid in self._listed:
                    by_id[gid] = self._listed[gid]
                    _set_print(prints, gid, self._prints.get(gid))
            for gid in [g for g, at in self._dropped.items() if at > started]:
                by_id.pop(gid, None)
            self._dropped = {g: at for g, at in self._dropped.items() if at > started}
            groups: dict[str, Any] = {}
            for gid in [g for g in prints if g not in by_id]:
                del prints[gid]  # (dropped by a poll meanwhile)
            for group in by_id.values():
                name = _group_key(group)
                if _prefer(groups.get(name), group):
                    groups[name] = group
            changed = [g for name, g in groups.items() if (prev := self._groups.get(name))
                       is not g and _signature(prev) != _signature(g)]
            self._fetched = {gid: self._fetched.get(gid, started) if self._fetched.get(
                gid, 0) > started else started for gid in by_id}
            self._groups = groups
            self._listed = by_id
            self._prints = prints
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

    async def resync(self, settled: Settled | None = None
                     ) -> tuple[list[StatusChange], set[str]]:
        """A full listing: every pod's status as ECI has it now, and the ``namespace/name`` of
        every pod that has a group. Every pod, not only those whose group changed since our
        previous view: that view may never have reached Kubernetes (a write that failed, a
        predecessor that died between ECI's change and its write); the caller writes only the
        statuses that differ from the pods'. Except the pods ``settled`` says the caller holds
        already (the same pod version, and the same answer from ECI, as when it last found
        them equal): most pods at rest, whose statuses are then neither built nor compared."""
        await self.refresh()
        present = {}
        for name, group in self._groups.items():
            known = self._known.get(name)
            meta = known.pod.metadata if known is not None else None
            present[name] = (f"{meta.namespace}/{meta.name}" if meta is not None else
                             f"{_tag(group, naming.TAG_NAMESPACE) or 'default'}/"
                             f"{_tag(group, naming.TAG_POD_NAME) or name}")
        changes = []
        for i, (name, group) in enumerate(list(self._groups.items())):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # thousands of pods: let the polls run meanwhile
            fingerprint = None
            known = self._known.get(name)
            # A pod with eci-max-pending-minute is built every time: its limit is judged there.
            if settled is not None and (known is None or pending.limit_seconds(known.pod) is None):
                # Of ECI's answer, which covers everything the status is built from.
                fingerprint = self._prints.get(group.container_group_id)
                if fingerprint is not None and settled(
                        present[name], _tag(group, naming.TAG_POD_UID), fingerprint):
                    continue
            changes.append(StatusChange(self._pod_for(group), fingerprint=fingerprint))
        return changes, set(present.values())

    async def changed_pods(self) -> list[StatusChange] | None:
        """Pods whose group changed since the previous call: one ``DescribeContainerGroupStatus``
        (more pages only with more than 200 changes) plus ``DescribeContainerGroups`` of just
        the changed groups, 20 a call, and of those that changed a few seconds ago (their late
        events, :mod:`vk_eci.cloud.groups.follow`). None: the previous poll is too old (or
        there was none), so the caller should list everything (:meth:`get_pods`)."""
        async with self._refresh_lock:
            poll = await self._poller.poll(watch=sorted(self._deleted))
            if not poll.complete:
                return None
            self._drop(poll.gone)
            # Groups that changed a few seconds ago, read again for the events ECI recorded
            # after the change (cloud/groups/follow.py); their statuses pass as any other.
            changed = set(poll.changed)
            # In the free places of the changed groups' last call; a call of their own only
            # when nothing changed: a status never waits for a follow-up.
            room = -len(changed) % FOLLOW_BATCH if changed else None
            follow = [gid for gid in self._follow.take(room)
                      if gid in self._listed and gid not in changed]
            fetch_started = time.monotonic()
            reuse = Reuse(self._held)
            try:
                fetched = await self.client.describe_container_groups(
                    ids=[*poll.changed, *follow], with_event=True, omit=NOT_KEPT, reuse=reuse)
            except EciError:
                self._poller.failed(poll)
                raise
            self._poller.applied(poll)
            merged = []
            for group in (g for g in fetched if _carries(g, self._mine)):
                name = _group_key(group)
                gid = group.container_group_id
                self._fetched[gid] = fetch_started
                if gid in changed:
                    self._follow.changed(gid)
                elif self._listed.get(gid) is group:
                    continue  # a follow-up answered as before: no status or event is new
                self._listed[gid] = group
                _set_print(self._prints, gid, reuse.prints.get(gid))
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
            # Beside the status writes, not before them: the statuses must not wait.
            self._queue_event_copies(merged)
        return [StatusChange(self._pod_for(group), poll.not_before) for group in merged]

    def _drop(self, gone: list[str]) -> None:
        """Forget groups ECI no longer has (their pods then read as gone)."""
        self._follow.forget(gone)
        for gid in gone:
            self._dropped[gid] = time.monotonic()
            self._fetched.pop(gid, None)
            self._prints.pop(gid, None)
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


def _set_print(prints: dict[str, int], gid: str, print_: int | None) -> None:
    if print_ is None:
        prints.pop(gid, None)
    else:
        prints[gid] = print_


def _signature(group: Any | None) -> Any:
    """What of a group shows in its pod's status (phase, IP, container states) and
    allocation annotations, comparable."""
    if group is None:
        return None
    containers = [*(group.containers or []), *(group.init_containers or [])]
    return (group.status, group.intranet_ip, group.succeeded_time, group.failed_time,
            sorted(allocated(group).items()),
            [(c.name, c.ready, c.restart_count,
              c.current_state.to_map() if c.current_state is not None else None,
              c.previous_state.to_map() if c.previous_state is not None else None)
             for c in containers])
