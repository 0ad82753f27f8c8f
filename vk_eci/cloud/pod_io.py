"""``EciPodIO``: the kubelet API's :class:`vk_eci.provider.PodIO` on ECI.

A pod's group is found by its tags: this node's (so groups of other nodes or clusters are never
read), the pod's namespace and name, and its UID when the node knows the pod (``pod_uid``, from
the node's pod informer); every group found, by tags or by a remembered id, is checked against
them (:func:`naming.belongs_to`), never taken by its name. A group name says nothing trusted:
two namespaces' pods could once share one. The id is remembered for a short while
(a pod keeps its group for life; a re-created pod gets a new one, hence the TTL).
Usage comes from ``DescribeMultiContainerGroupMetric``, 20 groups per call, for the node's
groups listed in one paged ``DescribeContainerGroups``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient
from vk_eci.cloud.api.errors import GroupForgotten, NotFound, Retryable
from vk_eci.cloud.api.exec_stream import EciExecStream
from vk_eci.cloud.api.ratelimit import INTERACTIVE
from vk_eci.cloud.groups.view import carries
from vk_eci.cloud.groups.view import tags as _tags
from vk_eci.provider import ContainerUsage, LogOptions, PodUsage, RunningPod

GROUP_TTL = 30.0
# Remembered group ids at most: a caller asking about many (made-up) pods cannot grow the map.
MAX_IDS = 4096
# How long one description of a group answers state and log lookups (one follow poll's worth).
DESCRIBE_TTL = 0.5
# Groups that no longer run anything worth reading usage from.
_ENDED = frozenset({"Succeeded", "Failed", "Expired", "ScheduleFailed"})


def _evict(entries: OrderedDict[Any, tuple[float, Any]], now: float, bound: int) -> None:
    """Oldest first (one TTL for all, so also soonest to expire): expired entries go, then the
    least recently stored over ``bound``."""
    while entries:
        expires = next(iter(entries.values()))[0]
        if expires > now and len(entries) <= bound:
            return
        entries.popitem(last=False)


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return None


def _eci_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _containers(group: Any) -> list[Any]:
    """The pod's containers in ``group``: never the node's own kube-proxy."""
    return [c for c in list(group.containers or []) + list(group.init_containers or [])
            if c.name != naming.PROXY_CONTAINER]


class EciPodIO:
    """Logs, exec and usage of this node's pods, from ECI."""

    def __init__(self, client: EciClient, *, cluster_name: str, node_name: str,
                 group_ttl: float = GROUP_TTL, max_ids: int = MAX_IDS,
                 describe_ttl: float = DESCRIBE_TTL,
                 pod_uid: Callable[[str, str], str | None] | None = None,
                 pod_ended: Callable[[str, str], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._cluster, self._node = cluster_name, node_name
        self._tags = naming.node_tags(cluster_name, node_name)
        self._pod_uid = pod_uid
        self._pod_ended = pod_ended
        self._ttl = group_ttl
        self._clock = clock
        self._ids: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._max_ids = max_ids
        self._describe_ttl = describe_ttl
        self._fresh: OrderedDict[tuple[str, str, str], tuple[float, Any]] = OrderedDict()
        self._describing: dict[tuple[str, str, str], asyncio.Future[Any]] = {}

    async def _group(self, namespace: str, pod: str) -> Any:
        """The pod's group model, described at most ``describe_ttl`` ago; NotFound when ECI has
        none or the node runs no such pod. A follow poll asks for the state and then the log
        within that time, and every session on one pod shares one description: one
        DescribeContainerGroups per poll, not two per session. Shared per pod UID, so that a
        re-created pod never gets its predecessor's description."""
        uid = self._pod_uid(namespace, pod) if self._pod_uid is not None else None
        if self._pod_uid is not None and uid is None:
            raise NotFound("ContainerGroup.NotFound",
                           f"pod {namespace}/{pod} is not a pod of this node")
        key = (namespace, pod, uid or "")
        fresh = self._fresh.get(key)
        if fresh is not None and fresh[0] > self._clock():
            return fresh[1]
        task = self._describing.get(key)
        if task is None:
            task = asyncio.ensure_future(self._describe(namespace, pod, uid))
            self._describing[key] = task

            def done(t: asyncio.Future[Any]) -> None:
                if self._describing.get(key) is t:
                    del self._describing[key]
                if not t.cancelled():
                    t.exception()  # retrieved: every waiter re-raises it itself

            task.add_done_callback(done)
        group = await asyncio.shield(task)
        self._fresh[key] = (self._clock() + self._describe_ttl, group)
        _evict(self._fresh, self._clock(), self._max_ids)
        return group

    async def _describe(self, namespace: str, pod: str, uid: str | None) -> Any:
        key = (namespace, pod)
        cached = self._ids.get(key)
        if cached is not None and cached[0] > self._clock():
            groups = await self._client.describe_container_groups(ids=[cached[1]],
                                                                  budget=INTERACTIVE)
            if groups and self._is_pods(groups[0], namespace, pod, uid):
                return groups[0]
            self._ids.pop(key, None)
        groups = await self._client.describe_container_groups(tags=naming.pod_tags(
            self._cluster, self._node, namespace, pod, uid), budget=INTERACTIVE)
        # Without a UID to go by, a re-created pod may still have its old group: newest wins.
        mine = [g for g in groups if g.container_group_id
                and self._is_pods(g, namespace, pod, uid)]
        if not mine:
            if self._pod_ended is not None and self._pod_ended(namespace, pod):
                # ECI keeps an ended group 1 hour, then only the last 100 of the region
                # (DescribeContainerGroups): the pod's final status stays, its logs do not.
                raise GroupForgotten(
                    "ContainerGroup.NotFound", f"pod {namespace}/{pod} has ended and its "
                    "container group is no longer kept by ECI (ECI keeps an ended group for "
                    "1 hour, then only the last 100 of the region): its logs and files are "
                    "gone")
            raise NotFound("ContainerGroup.NotFound",
                           f"pod {namespace}/{pod} has no container group on this node")
        group = max(mine, key=lambda g: g.creation_time or "")
        self._remember(key, group.container_group_id)
        return group

    def _is_pods(self, group: Any, namespace: str, pod: str, uid: str | None) -> bool:
        return carries(group, self._tags) and naming.belongs_to(_tags(group), namespace, pod,
                                                                uid)

    def _remember(self, key: tuple[str, str], group_id: str) -> None:
        now = self._clock()
        self._ids[key] = (now + self._ttl, group_id)
        self._ids.move_to_end(key)
        _evict(self._ids, now, self._max_ids)

    async def _group_with(self, namespace: str, pod: str, container: str) -> tuple[Any, Any]:
        group = await self._group(namespace, pod)
        for c in _containers(group):
            if c.name == container:
                return group, c
        names = ", ".join(sorted(c.name for c in _containers(group))) or "none"
        raise NotFound("Container.NotFound", f"pod {namespace}/{pod} has no container "
                       f"{container!r} (containers: {names})")

    async def container_logs(self, namespace: str, pod: str, container: str,
                             options: LogOptions) -> str:
        group, _ = await self._group_with(namespace, pod, container)
        return await self._client.describe_container_log(
            group.container_group_id, container, budget=INTERACTIVE, tail=options.tail_lines,
            since_seconds=options.since_seconds,
            start_time=_eci_time(options.since_time) if options.since_time else None,
            timestamps=options.timestamps or None, limit_bytes=options.limit_bytes,
            previous=options.previous or None)

    async def container_state(self, namespace: str, pod: str, container: str) -> str | None:
        try:
            _, c = await self._group_with(namespace, pod, container)
        except NotFound:
            return None
        state = c.current_state.state if c.current_state is not None else None
        return str(state) if state else "Waiting"

    async def open_exec(self, namespace: str, pod: str, container: str,
                        command: Sequence[str], *, tty: bool, stdin: bool) -> EciExecStream:
        group, _ = await self._group_with(namespace, pod, container)
        # Sync=false for every command: only the stream carries stdin, a tty, binary output
        # (kubectl cp's tar) and the exit code; the synchronous answer is text without one.
        body = await self._client.exec_container_command(
            group.container_group_id, container, command, sync=False, tty=tty, stdin=stdin,
            budget=INTERACTIVE)
        uri = str(body.web_socket_uri or "")
        if not uri:
            raise Retryable("ExecStreamUnavailable",
                            "ExecContainerCommand returned no WebSocketUri")
        return await EciExecStream.connect(uri)

    async def pod_usage(self) -> list[PodUsage]:
        groups = [g for g in await self._client.describe_container_groups(tags=self._tags)
                  if g.status not in _ENDED and carries(g, self._tags)]
        by_id = {g.container_group_id: g for g in groups}
        datas = await self._client.describe_multi_container_group_metric(list(by_id))
        out = []
        for data in datas:
            group = by_id.get(data.container_group_id)
            if group is None or not data.records:
                continue
            usage = _usage(group, data.records[-1])
            if usage is not None:
                out.append(usage)
        return out

    async def running_pods(self) -> list[RunningPod]:
        out = []
        for group in await self._client.describe_container_groups(tags=self._tags,
                                                                  budget=INTERACTIVE):
            if group.status in _ENDED or not carries(group, self._tags):
                continue
            tags = _tags(group)
            namespace, name = tags.get(naming.TAG_NAMESPACE), tags.get(naming.TAG_POD_NAME)
            # As the kubelet's runtime cache: only containers running now (not init ones that
            # ended, not a crashed one waiting for its restart).
            running = tuple((str(c.name), str(c.image or "")) for c in group.containers or []
                            if c.name != naming.PROXY_CONTAINER and c.current_state is not None
                            and c.current_state.state == "Running")
            if namespace and name and running:
                out.append(RunningPod(namespace=namespace, name=name,
                                      uid=tags.get(naming.TAG_POD_UID, ""), containers=running))
        return sorted(out, key=lambda p: (p.namespace, p.name))


def _usage(group: Any, record: Any) -> PodUsage | None:
    tags = _tags(group)
    namespace, name = tags.get(naming.TAG_NAMESPACE), tags.get(naming.TAG_POD_NAME)
    when = _time(record.timestamp)
    if not namespace or not name or when is None:
        return None
    starts = {c.name: _time(c.current_state.start_time) if c.current_state else None
              for c in group.containers or []}
    containers = tuple(
        ContainerUsage(
            name=c.name, cpu_nano_cores=int(c.cpu.usage_nano_cores or 0) if c.cpu else 0,
            cpu_core_nano_seconds=int(c.cpu.usage_core_nano_seconds or 0) if c.cpu else 0,
            memory_working_set_bytes=int(c.memory.working_set or 0) if c.memory else 0,
            memory_usage_bytes=int(c.memory.usage_bytes or 0) if c.memory else 0,
            memory_rss_bytes=int(c.memory.rss or 0) if c.memory else 0,
            start_time=starts.get(c.name))
        # The pod's figures include the node's proxy (it runs in the pod's resources); its
        # own line is not the pod's container.
        for c in record.containers or [] if c.name != naming.PROXY_CONTAINER)
    rx = tx = None
    if record.network is not None and record.network.interfaces:
        rx = sum(int(i.rx_bytes or 0) for i in record.network.interfaces)
        tx = sum(int(i.tx_bytes or 0) for i in record.network.interfaces)
    cpu, mem = record.cpu, record.memory
    return PodUsage(
        namespace=namespace, name=name, uid=tags.get(naming.TAG_POD_UID, ""), timestamp=when,
        cpu_nano_cores=int(cpu.usage_nano_cores or 0) if cpu else 0,
        cpu_core_nano_seconds=int(cpu.usage_core_nano_seconds or 0) if cpu else 0,
        memory_working_set_bytes=int(mem.working_set or 0) if mem else 0,
        memory_usage_bytes=int(mem.usage_bytes or 0) if mem else 0,
        memory_rss_bytes=int(mem.rss or 0) if mem else 0,
        containers=containers, rx_bytes=rx, tx_bytes=tx,
        start_time=_time(group.creation_time))
