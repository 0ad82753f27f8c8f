"""The state an :class:`vk_eci.cloud.provider.EciProvider` keeps between calls, and its settings.

:class:`ProviderState` declares it all in one place: the pods the provider created or was told
about (:class:`Known`), the groups of the last listing and what the status polls changed since,
the group ids whose deletion ECI accepted, and which pods are starting or stopping (``busy``).
The provider's concerns are split over modules that each extend it in turn: the status push
(:mod:`vk_eci.cloud.provider_push`), the batched listing and the reads served from it
(:mod:`vk_eci.cloud.provider_listing`), and the creation path (:mod:`vk_eci.cloud.provider`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient
from vk_eci.cloud.groups.follow import FollowUps
from vk_eci.cloud.groups.poll import StatusPoller
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.cloud.groups.view import MOVING
from vk_eci.cloud.groups.view import key as _key
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.policy.gate import PolicyGate
from vk_eci.cloud.translation.context import CacheDecision, ServiceAccess, TranslateContext
from vk_eci.cloud.translation.credentials import RegistryCredential
from vk_eci.metrics import Metrics
from vk_eci.provider import EventRecorder, Pod, PodResources

# (pod, the credentials of its own pull secrets) -> how it uses image caches
CacheDecider = Callable[[Pod, Sequence[RegistryCredential]], Awaitable[CacheDecision]]
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
    # The kube-proxy injected into each group (None: --cluster-ip-mode none).
    service_access: ServiceAccess | None = None
    # Seconds between checks of the pods that opted in to refreshed files, and the least time
    # between two refreshes (restarts) of one pod (provider_refresh.py).
    volume_refresh_interval: float = 60.0

    def base_context(self) -> TranslateContext:
        return TranslateContext(placement=self.placement,
                                cluster_name=self.cluster_name, node_name=self.node_name,
                                cluster_dns=tuple(self.cluster_dns),
                                cluster_domain=self.cluster_domain,
                                cpu_architecture=self.cpu_architecture,
                                service_access=self.service_access)


@dataclass(slots=True)  # one per pod: no __dict__ (~250 bytes a pod at 10,000)
class Known:
    """A pod this provider created or was told about, and what was last pushed for it."""

    pod: Pod
    created_at: float | None = None  # monotonic time the create call returned
    group_id: str | None = None
    last_pushed: bytes | None = None  # status_fingerprint of the status last pushed
    # hash((name, reason, message, count)) of each ECI event copied: an int, not the tuple,
    # which would keep every event's message alive for the pod's life (~1 KiB a pod).
    seen_events: set[int] = field(default_factory=set)
    pending_since: float | None = None  # clock() when its group's counted Pending began
    timed_out: Any = None  # the Failed status once eci-max-pending-minute passed
    refresh: Any = None  # what an opted-in pod's files were last (provider_refresh.py)


YIELD_EVERY = 200  # pods walked between yields to the event loop


class ProviderState:
    """What the provider keeps between calls; see the module docstring."""

    def __init__(self, client: EciClient, settings: ProviderSettings, resources: PodResources,
                 *, events: EventRecorder | None = None,
                 cache_decider: CacheDecider | None = None,
                 metrics: Metrics | None = None, gate: PolicyGate | None = None) -> None:
        self.client = client
        # The profile's policy and cluster-level network (docs/PROFILE.md); None: neither.
        self.gate = gate
        self.metrics = metrics
        self._preempted: set[str] = set()  # group ids whose SpotToBeReleased was counted
        self.settings = settings
        self.resources = resources
        self.events = events
        self.cache_decider = cache_decider
        # Told each listed group's ECI events (the cache ECI says it used).
        self.on_group_events: Callable[[Pod, list[GroupEvent]], Awaitable[None]] | None = None
        self._groups: dict[str, Any] = {}  # by pod key (group_key): the live (or newest) one
        self._listed: dict[str, Any] = {}  # every group of the last listing, by id
        # Group id -> fingerprint of ECI's answer its description in _listed was built from:
        # the same answer again is not rebuilt (cloud/api/reuse.py). Absent: read it in full.
        self._prints: dict[str, int] = {}
        self._deleted: set[str] = set()  # group ids whose deletion ECI accepted
        self._known: dict[str, Known] = {}  # by pod key (see group_view.key)
        self._callbacks: list[StatusCallback] = []
        self._refreshed_at: float | None = None  # monotonic start of the last full listing
        self._wake = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self.refresh_count = 0
        self._mine = naming.node_tags(settings.cluster_name, settings.node_name)
        self._poller = StatusPoller(client, self._mine)
        self._follow = FollowUps()  # changed groups read again shortly after: late events
        self._moving: dict[str, float] = {}  # pod key -> monotonic time it started moving
        self._events_lock = asyncio.Lock()
        # Monotonic time each cached group was fetched, and groups the polls found gone: a
        # listing that began earlier must not bring back an older state.
        self._fetched: dict[str, float] = {}
        self._dropped: dict[str, float] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()
        # Groups whose events wait to be copied, by pod key: the newest description of each
        # (it lists every event the older ones did), so a busy copier holds one per pod.
        self._copy_queue: dict[str, Any] = {}
        self._copier: asyncio.Task[None] | None = None
        # The clock of eci-max-pending-minute (a test may hand the provider another one).
        self.clock: Callable[[], float] = time.monotonic

    def _held(self, gid: str) -> tuple[int, Any] | None:
        """The description held for ``gid`` and the fingerprint of the answer it was built
        from (for :class:`vk_eci.cloud.api.reuse.Reuse`)."""
        print_ = self._prints.get(gid)
        group = self._listed.get(gid) if print_ is not None else None
        return None if group is None or print_ is None else (print_, group)

    async def stop_background(self) -> None:
        """Cancel the event copies and pending-timeout deletes still running. The node is
        stopping and closes its API clients next: each queued copy would fail on a closed
        session and log it, thousands of lines after a burst. Copies not made are made after
        a restart (a copy's name comes from the event, so none is made twice); a timed-out
        group is found again by the next node's first listing."""
        self._copy_queue.clear()
        tasks = list(self._event_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _awaiting_listing(self, known: Known) -> bool:
        return known.created_at is not None and (
            self._refreshed_at is None or self._refreshed_at < known.created_at)

    def _awaiting(self, name: str) -> bool:
        known = self._known.get(name)
        return known is not None and self._awaiting_listing(known)

    def _note_moving(self, name: str, group: Any) -> None:
        if group.status in MOVING:
            self._moving.setdefault(name, time.monotonic())
        elif name in self._moving and not self._awaiting(name):
            del self._moving[name]

    def busy(self) -> bool:
        """Whether a group of this node is starting or stopping (created, deleted or in a
        moving ECI status, within ``moving_for``)."""
        now = time.monotonic()
        for name, since in list(self._moving.items()):
            if now - since > self.settings.moving_for:
                del self._moving[name]
        return bool(self._moving)

    def request_refresh(self) -> None:
        """Make :meth:`run` refresh soon (after the debounce window)."""
        self._wake.set()

    def track(self, pod: Pod) -> None:
        """Follow ``pod`` (one this node runs but did not create in this process, e.g. after a
        restart) so that its status changes and events are pushed; for a pod already followed,
        ``pod`` is its newer version (the older one is then no longer held)."""
        key = _key(pod.metadata.namespace, pod.metadata.name)
        known = self._known.get(key)
        if known is None:  # (no Known built for the common case: an update of a followed pod)
            self._known[key] = Known(pod)
        else:
            known.pod = pod
