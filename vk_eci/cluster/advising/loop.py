"""The cache advisor's loop in the node (``vk-eci run --imagecache-advisor=suggest|apply``).

It runs in the node's leader only (beside the Lease and status loops), so one process per node
plans and writes. At start it loads the demand record from its ConfigMap
(:mod:`vk_eci.cluster.advising.store`); then every ``interval`` seconds it lists the ImageCache
objects, plans from the observed demand and the caches that exist (the pure planner,
:func:`vk_eci.advisor.planner.plan`), sets the advisor's metrics and logs the plan, and:

- ``suggest``: writes each change the plan proposes (create, update, retire) as a Normal Event
  on this node's Node object (``kubectl describe node``), once per distinct plan; creates
  nothing;
- ``apply``: creates, updates and retires ImageCache objects labelled ``ADVISOR_OWNED_LABEL``
  with this node's value (:mod:`vk_eci.cluster.advising.caches`), each an Event on the object
  and on the Node; the ImageCache controller then builds them in ECI. An object without that
  label is never written, even when the plan names it; a retired one is deleted only once its
  pods have moved (``caches.still_used``), with the object's UID as precondition.

With ``elector`` (``--imagecache-advisor-lease``) it plans once for the cluster: every node's
leader keeps its record, only the holder of that Lease plans, from every node's record
(:meth:`DemandStore.read_others`), owning caches under the Lease's name (docs/ADVISOR.md
"A fleet").

Every ImageCache write passes the node's fence first (and the advisor Lease's, with one). A
failed cycle is logged and retried at the next interval; losing leadership
(:class:`~vk_eci.cluster.kube.fence.Fenced`) ends the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.advisor.model import (
    Action,
    Budget,
    ExistingCache,
    ImageSetDemand,
    Plan,
)
from vk_eci.advisor.record import DemandRecord
from vk_eci.advisor.scope import scope_plan
from vk_eci.cluster.advising import caches as ac
from vk_eci.cluster.advising.apply import Applier, describe, summary
from vk_eci.cluster.advising.store import DemandStore
from vk_eci.cluster.imagecaches.events import ImageCacheEvents
from vk_eci.cluster.imagecaches.secrets import AdvisorGrants
from vk_eci.cluster.imagecaches.spec import GROUP, PLURAL, VERSION
from vk_eci.cluster.kube.fence import Fence, Fenced
from vk_eci.log import caches_logger as log
from vk_eci.metrics import Metrics

COMPONENT = "vk-eci-imagecache-advisor"
Planner = Callable[..., Plan]


@dataclass(frozen=True)
class AdvisorSettings:
    mode: str  # suggest | apply
    node_name: str
    interval: float = 300.0
    budget: Budget = field(default_factory=Budget)
    # The ImageCache label value of what this advisor owns: the node's name (an advisor per
    # node), or the advisor Lease's name when it plans once for the cluster.
    owner: str = ""


class BothOpen(Fence):
    """Open while every one of ``fences`` is: the node's leadership and the cluster advisor's."""

    def __init__(self, *fences: Fence) -> None:
        super().__init__()
        self.fences = fences

    @property
    def is_open(self) -> bool:
        return all(f.is_open for f in self.fences)


class CacheAdvisor:
    """See the module docstring. ``pods()`` gives this node's pods (the informer's store),
    ``catalog()`` the ECI caches the node knows (``CacheInfo``)."""

    def __init__(self, api: Any, settings: AdvisorSettings, record: DemandRecord,
                 store: DemandStore, planner: Planner, *, fence: Fence | None = None,
                 metrics: Metrics | None = None,
                 pods: Callable[[], Iterable[Any]] = lambda: (),
                 catalog: Callable[[], Iterable[Any]] = lambda: (),
                 clock: Callable[[], float] = time.time,
                 grants: AdvisorGrants | None = None, elector: Any = None) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.settings = settings
        self.record = record
        self.store = store
        self.planner = planner
        self.fence = fence or Fence()
        self.metrics = metrics
        self.pods = pods
        self.catalog = catalog
        self.clock = clock
        self.events = ImageCacheEvents(api, host=settings.node_name, component=COMPONENT)
        self.owner = settings.owner or ac.owner_value(settings.node_name)
        # Once per cluster: plans only while leading the advisor Lease (a LeaderElector whose
        # fence its ImageCache writes pass too), from every node's record.
        self.elector = elector
        writes = self.fence if elector is None or elector.fence is None else BothOpen(
            self.fence, elector.fence)
        self.applier = Applier(api, self.owner, self.events, self._node_event, fence=writes,
                               grace=settings.interval, pods=pods, metrics=metrics,
                               grants=grants)
        self.plan: Plan | None = None
        self._owned: dict[str, tuple[str, ...]] = {}
        self._suggested: tuple[Any, ...] | None = None
        self._node: dict[str, Any] | None = None

    def owned(self, cache_id: str) -> Sequence[str] | None:
        """The images of an advisor-owned cache by ECI id (the observer's realised savings)."""
        return self._owned.get(cache_id)

    async def run(self) -> None:
        step = min(self.settings.interval, self.store.save_interval)
        await self._load(retry=min(step, 10.0))
        try:
            if self.elector is None:
                await self._loop(step, plan=True)
            else:  # the record kept always; plans only while leading the cluster's advisor
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._loop(step, plan=False), name="advisor:record")
                    tg.create_task(self.elector.run(self._plan_for_cluster),
                                   name="advisor:plan")
        finally:
            if self.fence.is_open:
                try:
                    await self.store.save(self.record, force=True)
                except Exception as e:  # stopping anyway: the record is at most one save old
                    log.warning("advisor: last save of %s failed: %s", self.store.where, e)

    async def _loop(self, step: float, plan: bool) -> None:
        next_plan = 0.0
        while True:
            now = time.monotonic()
            if plan and now >= next_plan:
                next_plan = now + self.settings.interval
                await self._guarded(self.cycle)
            await self._guarded(lambda: self.store.save(self.record))
            await asyncio.sleep(step)

    async def _plan_for_cluster(self) -> None:
        log.info("advisor: %s plans for the cluster (ImageCaches labelled %s)",
                 self.settings.node_name, self.owner)
        while True:
            await self._guarded(self.cycle)
            await asyncio.sleep(self.settings.interval)

    async def _load(self, retry: float) -> None:
        """Read the stored record before anything is planned or saved (a save before the
        load would overwrite what the last leader kept); an API failure is retried."""
        while True:
            try:
                problem = await self.store.load(self.record)
                break
            except (Fenced, asyncio.CancelledError):
                raise
            except Exception as e:
                log.warning("advisor: cannot read %s: %s; retrying in %.0fs", self.store.where,
                            e, retry)
                await asyncio.sleep(retry)
        if problem is not None:
            log.warning("advisor: %s; starting from what this process observes", problem)
            await self._node_event("Warning", "ImageCacheAdvisorStateUnreadable", problem)

    async def _guarded(self, step: Callable[[], Any]) -> None:
        try:
            await step()
        except (Fenced, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("advisor: step failed; trying again at the next interval")

    async def cycle(self) -> Plan:
        """List, plan, report, and (apply) write: one turn."""
        objects = await self._list()
        now = self.clock()
        self._owned = ac.owned_images(objects, self.owner)
        existing = ac.existing_caches(objects, self.catalog(), self.owner, now)
        record = self.record
        if self.elector is not None:  # the cluster's: every node's demand
            record = record.copy()
            for other in await self.store.read_others(record):
                record.merge(other)
        demand = record.demand(now)
        # CPU-bound (about a second for hundreds of image sets): off the event loop.
        plan = await asyncio.to_thread(self.planner, demand, existing, self.settings.budget,
                                       now=now)
        # One namespace's credentials per cache (advisor/scope.py).
        # Credentials only when this process's ImageCache controller leads and so sees our
        # grants; otherwise private images stay out of the plan (public images only).
        grants = self.applier.grants
        plan = scope_plan(plan, record.private_of,
                          credentials=grants is not None and grants.controller_leading)
        self.plan = plan
        self._report(plan, demand, existing, len(record.sets))
        if self.settings.mode == "apply":
            await self.applier.apply(plan, {str(ac.meta(o).get("name")): o for o in objects},
                                     now)
        else:
            await self.suggest(plan)
        return plan

    async def _list(self) -> list[dict[str, Any]]:
        try:
            listing = await self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException as e:
            if e.status != 404:
                raise
            log.warning("advisor: the ImageCache resource is not installed; planning from "
                        "ECI's caches only")
            return []
        return list(listing.get("items") or [])

    def _report(self, plan: Plan, demand: Sequence[ImageSetDemand],
                existing: Sequence[ExistingCache], sets: int) -> None:
        counts = Counter(c.action for c in plan.caches)
        cost = sum(c.cost_per_day for c in plan.caches if c.action is not Action.RETIRE)
        if self.metrics is not None:
            self.metrics.advisor_expected_savings.set(plan.expected_saved_seconds_per_day)
            self.metrics.advisor_cost.set(cost)
            for action in Action:
                self.metrics.advisor_caches.labels(action=action.value).set(counts[action])
            self.metrics.advisor_image_sets.set(sets)
        log.info("advisor (%s): plan of %d caches (create %d, update %d, keep %d, retire %d), "
                 "%d GiB, expected to save %.0f pull seconds/day at a cost of %.0f/day, from "
                 "%d image sets and %d existing caches%s", self.settings.mode,
                 len(plan.caches), counts[Action.CREATE], counts[Action.UPDATE],
                 counts[Action.KEEP], counts[Action.RETIRE], plan.total_gib,
                 plan.expected_saved_seconds_per_day, cost, len(demand), len(existing),
                 "".join(f"; {describe(c)}" for c in plan.caches
                         if c.action is not Action.KEEP))

    async def suggest(self, plan: Plan) -> None:
        changes = tuple(c for c in plan.caches if c.action is not Action.KEEP)
        signature = tuple((c.name, c.action, c.images, c.size_gib) for c in changes)
        if signature == self._suggested:
            return  # the same advice again: already on the Node
        for cache in changes:
            log.info("advisor (suggest): advice: %s", describe(cache))
            await self._node_event("Normal", "ImageCacheAdvised", "advice: " + summary(cache))
        self._suggested = signature

    async def _node_event(self, type: str, reason: str, message: str) -> None:
        if self._node is None:
            try:
                node = await self.core.read_node(self.settings.node_name)
                self._node = {"apiVersion": "v1", "kind": "Node", "metadata": {
                    "name": node.metadata.name, "uid": node.metadata.uid}}
            except ApiException as e:
                log.warning("advisor: event %s not recorded: Node %s unreadable: %s", reason,
                            self.settings.node_name, e)
                return
        await self.events.record(self._node, type, reason, message)
