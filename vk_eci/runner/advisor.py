"""How ``vk-eci run --imagecache-advisor=suggest|apply`` connects the advisor to the node.

Observation runs wherever the node's provider sees its pods' groups (the leader): the
provider's group-events hook also feeds :class:`~vk_eci.advisor.observe.PodObserver`, and the
cache reporter tells it ECI's word on each pod. Planning and writing run in the leader's
:class:`~vk_eci.cluster.advising.loop.CacheAdvisor`, started by the runner beside the Lease loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from vk_eci.advisor.model import Budget
from vk_eci.advisor.observe import PodObserver
from vk_eci.advisor.planner import plan
from vk_eci.advisor.record import DemandRecord
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.cluster.advising.caches import owner_value
from vk_eci.cluster.advising.loop import AdvisorSettings, CacheAdvisor
from vk_eci.cluster.advising.store import DemandStore
from vk_eci.cluster.imagecaches.secrets import AdvisorGrants
from vk_eci.cluster.kube.fence import Fence
from vk_eci.cluster.kube.leader import LeaderElector
from vk_eci.config import Settings
from vk_eci.metrics import Metrics

GroupEventsHook = Callable[[Any, list[GroupEvent]], Awaitable[None]]


def budget(settings: Settings) -> Budget:
    return Budget(max_caches=settings.imagecache_advisor_max_caches,
                  max_gib=settings.imagecache_advisor_max_gib,
                  cost_per_gib_day=settings.imagecache_advisor_cost_per_gib_day,
                  hit_overhead_seconds=settings.imagecache_advisor_hit_overhead,
                  max_namespace_share=settings.imagecache_advisor_namespace_share,
                  min_pull_mib_per_s=settings.imagecache_advisor_min_pull_mib_per_s)


def build(settings: Settings, api: Any, *, fence: Fence, metrics: Metrics, pods: Any,
          provider: Any, chooser: Any, grants: AdvisorGrants | None = None) -> CacheAdvisor:
    """The advisor of this node, its observer hooked into the provider and the reporter.

    ``pods`` is the pod controller (its informer's store is the node's view of its pods),
    ``chooser`` the provider's image-cache step (catalog and reporter), ``grants`` shared with
    this process's ImageCache controller (None: none runs here, so the advisor's caches hold
    public images only; docs/ADVISOR.md "Private images").
    """
    record = DemandRecord(window_hours=settings.imagecache_advisor_window / 3600.0)
    namespace, _, name = settings.imagecache_advisor_configmap.partition("/")
    store = DemandStore(api, namespace, name,
                        save_interval=settings.imagecache_advisor_save_interval)
    elector, owner = None, ""
    if settings.imagecache_advisor_lease:  # once per cluster, among the nodes' leaders
        lease_namespace, _, lease_name = settings.imagecache_advisor_lease.partition("/")
        elector = LeaderElector(api, lease_name, lease_namespace, settings.identity,
                                fence=Fence(open_=False))
        owner = owner_value(lease_name)
    advisor = CacheAdvisor(
        api, AdvisorSettings(mode=settings.imagecache_advisor, node_name=settings.node_name,
                             interval=settings.imagecache_advisor_interval,
                             budget=budget(settings), owner=owner),
        record, store, plan, fence=fence, metrics=metrics,
        pods=lambda: list(pods.informer.cache.values()),
        catalog=lambda: list(chooser.catalog.all()), grants=grants, elector=elector)
    observer = PodObserver(record, metrics=metrics, owned=advisor.owned)
    chooser.reporter.listeners.append(
        lambda pod, expected, report: observer.reported(pod, expected.images, report.cache_id,
                                                        report.result, expected.credentialed))
    provider.on_group_events = chain(provider.on_group_events, observer.group_events)
    return advisor


def chain(*hooks: GroupEventsHook | None) -> GroupEventsHook:
    """One group-events hook calling each of ``hooks`` in turn (a failing one does not stop
    the next: the provider logs what the combined hook raised)."""
    present: Sequence[GroupEventsHook] = [h for h in hooks if h is not None]

    async def hook(pod: Any, events: list[GroupEvent]) -> None:
        error: Exception | None = None
        for one in present:
            try:
                await one(pod, events)
            except Exception as e:
                error = error or e
        if error is not None:
            raise error

    return hook
