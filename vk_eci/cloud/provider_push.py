"""How the provider tells others about its groups (:class:`StatusPush`).

Each changed status goes to the callbacks of :meth:`StatusPush.notify_pods`; the groups' new
ECI events are copied onto their pods once each, through the
:class:`vk_eci.provider.EventRecorder` (and told to ``on_group_events``); a spot group ECI is
about to reclaim is logged and counted once. Apart from the listing
(:mod:`vk_eci.cloud.provider_listing`), which decides *when* this runs: after every full
listing, and beside the status writes for the groups a poll found changed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio.client import V1Pod

from vk_eci.cloud.api import naming
from vk_eci.cloud.groups import spot
from vk_eci.cloud.groups.status import (
    GroupEvent,
    group_events,
    group_to_pod_status,
    status_fingerprint,
)
from vk_eci.cloud.groups.view import group_key as _group_key
from vk_eci.cloud.groups.view import tag as _tag
from vk_eci.cloud.provider_state import YIELD_EVERY, Known, ProviderState
from vk_eci.log import cloud_logger

# ECI's own "Scheduled" ("Successfully assigned eci-… to eci") would sit beside the
# scheduler's real one in ``kubectl describe`` and cost a request per pod; the reporters
# (``on_group_events``) still see it.
NOT_COPIED = frozenset({"Scheduled"})


class StatusPush(ProviderState):
    """Statuses and events of the cached groups, pushed; see the module docstring."""

    # ---- PodStatusNotifier ----------------------------------------------------------------

    def notify_pods(self, callback: Any) -> None:
        self._callbacks.append(callback)

    # ---- pushing statuses and copying events -----------------------------------------------

    async def _push(self, groups: dict[str, Any]) -> None:
        async with self._events_lock:
            await self._push_locked(groups)

    async def _push_locked(self, groups: dict[str, Any]) -> None:
        for i, (key, known) in enumerate(list(self._known.items())):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                # Thousands of pods: let the status polls run between slices of this walk.
                await asyncio.sleep(0)
            group = groups.get(key)
            if group is None or _tag(group, naming.TAG_POD_UID) not in (None,
                                                                        known.pod.metadata.uid):
                continue
            if self.events is not None:
                await self._copy_events_of(known, group)
            self._count_preemption(known, group)
            if not self._callbacks:
                continue  # nobody to push statuses to (the node reads them itself)
            status = group_to_pod_status(group, known.pod)
            pushed = status_fingerprint(status)
            if known.last_pushed == pushed:
                continue
            known.last_pushed = pushed
            pod = V1Pod(api_version="v1", kind="Pod", metadata=known.pod.metadata,
                        spec=known.pod.spec, status=status)
            for callback in self._callbacks:
                try:
                    await callback(pod)
                except Exception:  # one failing consumer must not stop the others
                    cloud_logger.exception("status callback failed",
                                           extra={"pod": f"{pod.metadata.namespace}/"
                                                         f"{pod.metadata.name}"})

    def _queue_event_copies(self, groups: list[Any]) -> None:
        """Copy the events of ``groups`` beside the status writes, not before them. Only the
        newest description of a pod's group waits: while the copier is busy (a burst of
        starts has several events per pod), a newer one replaces the older, which it lists
        every event of. Queued descriptions would otherwise pile up, a generation of group
        models per poll."""
        for group in groups:
            self._copy_queue[_group_key(group)] = group
        if not self._copy_queue or (self._copier is not None and not self._copier.done()):
            return  # the running copier takes them
        task = self._copier = asyncio.create_task(self._drain_copies())
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _drain_copies(self) -> None:
        # The queue is swapped for a fresh one per batch (popping a dict's first key one at a
        # time rescans its deleted slots: quadratic in a burst), and the events lock is taken
        # per pod, not for the whole burst, so that a listing's own copies interleave.
        while self._copy_queue:
            batch, self._copy_queue = self._copy_queue, {}
            for key, group in batch.items():
                async with self._events_lock:  # one copier per pod at a time: copied once
                    known = self._known.get(key)
                    if known is None or _tag(group, naming.TAG_POD_UID) not in (
                            None, known.pod.metadata.uid):
                        continue
                    try:
                        await self._copy_events_of(known, group)
                    except Exception:  # tried again with the group's next change or listing
                        cloud_logger.exception("copying ECI events failed", extra={
                            "pod": f"{known.pod.metadata.namespace}/{known.pod.metadata.name}"})

    async def _copy_events_of(self, known: Known, group: Any) -> None:
        """Copy ``group``'s new events, then drop them from its description. An event not
        written is tried again with the next answer, which must then be read in full: the
        description held no longer has it (cloud/api/reuse.py)."""
        complete = False
        try:
            complete = await self._copy_events(known, group_events(group))
        finally:
            if not complete:
                self._prints.pop(group.container_group_id, None)
        _settle_events(group)

    async def _copy_events(self, known: Known, events: list[GroupEvent]) -> bool:
        """Whether every event was copied (or had been)."""
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
        complete = True
        for event in events:
            if event.reason in NOT_COPIED:
                continue
            seen = hash((event.name, event.reason, event.message, event.count))
            if seen in known.seen_events:
                continue
            if copy is None:
                await self.events.record(known.pod, event.type, event.reason, event.message)
            elif not await copy(known.pod, event.type, event.reason, event.message,
                                key=f"{event.name}/{event.reason}/{event.message}",
                                count=event.count, first=event.first, last=event.last):
                complete = False
                continue  # not written: tried again on the next refresh
            known.seen_events.add(seen)
        return complete

    def _count_preemption(self, known: Known, group: Any) -> None:
        gid = group.container_group_id or ""
        if gid in self._preempted or not spot.warned(group):
            return
        self._preempted.add(gid)
        cloud_logger.warning("ECI will reclaim spot container group %s", gid, extra={
            "pod": f"{known.pod.metadata.namespace}/{known.pod.metadata.name}",
            "reason": spot.WARNING_REASON})
        if self.metrics is not None:
            self.metrics.spot_preemptions.inc()


def _settle_events(group: Any) -> None:
    """Once a description's events are copied, it keeps only those its pod's status reads
    (ECI's spot release warning). The description stays cached until the next listing; its
    events were a third of it, and the next listing or change brings them again (an event
    whose copy failed is copied then, as before)."""
    events = group.events
    if events:
        kept = [e for e in events if getattr(e, "reason", None) == spot.WARNING_REASON]
        group.events = kept or None
