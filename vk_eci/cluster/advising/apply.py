"""Apply mode of the cache advisor: the plan as advisor-owned ImageCache objects.

For each planned cache: create the object (labelled with this node's owner value, annotated
with why it exists), patch an owned one whose spec differs (update), leave a kept one, and
retire the rest of this node's advisor-owned objects: mark each retiring, and delete it once
its pods have moved (:func:`vk_eci.cluster.advising.caches.still_used`). An object of a planned
name that is not this node's advisor's is never written (a Warning event on the Node says so).
Every write is decided on a fresh read, conditional on its resourceVersion (a delete also on
its UID), and passes the node's fence first; a conflict waits for the next cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.advisor.model import ADVISOR_OWNED_LABEL, Action, Plan
from vk_eci.advisor.objects import imagecache_object, reasons, spec_of
from vk_eci.cluster.advising import caches as ac
from vk_eci.cluster.imagecaches.controller import MERGE_PATCH
from vk_eci.cluster.imagecaches.events import ImageCacheEvents
from vk_eci.cluster.imagecaches.secrets import GRANT_ANNOTATION, AdvisorGrants
from vk_eci.cluster.imagecaches.spec import GROUP, PLURAL, VERSION
from vk_eci.cluster.kube.fence import Fence
from vk_eci.log import caches_logger as log
from vk_eci.metrics import Metrics

NodeEvent = Callable[[str, str, str], Awaitable[None]]
VERB = {Action.CREATE: "create", Action.UPDATE: "update", Action.RETIRE: "retire",
        Action.KEEP: "keep"}


def describe(cache: Any) -> str:
    """One planned cache in a sentence (events and the log)."""
    images = ", ".join(cache.images[:5]) + (f" and {len(cache.images) - 5} more"
                                            if len(cache.images) > 5 else "")
    who = f" for {', '.join(cache.workloads[:3])}" if cache.workloads else ""
    return (f"{VERB[cache.action]} ImageCache {cache.name}: {len(cache.images)} images "
            f"({images}), {cache.size_gib} GiB, expected to save "
            f"{cache.saved_seconds_per_day:.0f} pull seconds/day at a cost of "
            f"{cache.cost_per_day:.0f}/day{who}")


def summary(cache: Any) -> str:
    """One planned cache in counts only, for the Node's events: those land in ``default``,
    where any tenant may read them, so they name no workload, namespace or image (the log
    line, the operator's, has :func:`describe`)."""
    spaces = {w.split("/", 1)[0] for w in cache.workloads}
    who = (f" for {len(cache.workloads)} workload(s) in {len(spaces)} namespace(s)"
           if cache.workloads else "")
    return (f"{VERB[cache.action]} ImageCache {cache.name}: {len(cache.images)} images, "
            f"{cache.size_gib} GiB, expected to save {cache.saved_seconds_per_day:.0f} pull "
            f"seconds/day at a cost of {cache.cost_per_day:.0f}/day{who}; the images and "
            f"workloads are in the node's log")


class Applier:
    """Writes one plan; ``grace`` is how recently a pod may have started from a retired cache
    for it to stay, ``pods()`` the node's pods."""

    def __init__(self, api: Any, owner: str, events: ImageCacheEvents, node_event: NodeEvent,
                 *, fence: Fence, grace: float, pods: Callable[[], Iterable[Any]],
                 metrics: Metrics | None = None, grants: AdvisorGrants | None = None) -> None:
        self.custom: Any = client.CustomObjectsApi(api)
        self.owner = owner
        self.events = events
        self.node_event = node_event
        self.fence = fence
        self.grace = grace
        self.pods = pods
        self.metrics = metrics
        # Shared with this process's ImageCache controller: the only way an object the advisor
        # writes may use a namespace's pull secrets (cluster/imagecaches/secrets.py).
        self.grants = grants

    async def apply(self, plan: Plan, objects: Mapping[str, Mapping[str, Any]],
                    now: float) -> None:
        planned = {c.name for c in plan.caches}
        for name, listed in objects.items():
            # Owned but named by no plan (e.g. a failed build, which is not supply): retired.
            if name not in planned and ac.owned(listed, self.owner):
                await self._retire(listed, now)
        for cache in plan.caches:
            obj = objects.get(cache.name)
            if obj is not None and not ac.owned(obj, self.owner):
                if cache.action is not Action.KEEP:
                    message = (f"not applying the plan's {VERB[cache.action]} of ImageCache "
                               f"{cache.name}: an object of that name exists without "
                               f"{ADVISOR_OWNED_LABEL}={self.owner} (not the advisor's)")
                    log.warning("advisor: %s", message)
                    await self.node_event("Warning", "ImageCacheNotOwned", message)
                continue
            if cache.action is Action.RETIRE:
                if obj is not None:
                    await self._retire(obj, now)
            elif obj is None:
                if cache.action is not Action.KEEP:
                    await self._create(cache)
            else:
                await self._keep(obj, cache)

    async def _create(self, cache: Any) -> None:
        if not ac.valid_name(cache.name):
            log.warning("advisor: planned ImageCache name %r is not a valid object name; "
                        "skipped", cache.name)
            return
        self.fence.check(f"create ImageCache {cache.name}")
        body = imagecache_object(cache, self.owner)
        if cache.pull_secrets and self.grants is not None:
            nonce = self.grants.offer(cache.name, cache.pull_secrets, cache.images)
            body["metadata"]["annotations"][GRANT_ANNOTATION] = nonce
        try:
            obj = await self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        except ApiException as e:
            self._revoke(cache.name)
            if e.status == 409:
                return  # made meanwhile; the next cycle sees whose it is
            raise
        if cache.pull_secrets and self.grants is not None:
            self.grants.bind(cache.name, str(ac.meta(obj).get("uid") or ""))
        self._applied("create")
        message = describe(cache)
        log.info("advisor: %s", message)
        await self.events.record(obj, "Normal", "ImageCacheAdvisorCreated", message)
        await self.node_event("Normal", "ImageCacheAdvisorCreated", summary(cache))

    async def _fresh(self, name: str) -> dict[str, Any] | None:
        """The object as it is now, if it still exists and is still the advisor's: every write
        is decided on this read and made conditional on its resourceVersion (a 409 is decided
        again next cycle)."""
        try:
            obj: dict[str, Any] = await self.custom.get_cluster_custom_object(
                GROUP, VERSION, PLURAL, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return obj if ac.owned(obj, self.owner) else None

    async def _keep(self, listed: Mapping[str, Any], cache: Any) -> None:
        if ac.meta(listed).get("deletionTimestamp"):
            return  # on its way out (its finalizer runs); a create of the name waits for it
        retiring = ac.RETIRING_ANNOTATION in (ac.meta(listed).get("annotations") or {})
        if not retiring and not ac.differs(listed, cache):
            self._grant(listed, cache)
            return
        obj = await self._fresh(cache.name)
        if obj is None:
            return
        updating = ac.differs(obj, cache)
        annotations: dict[str, Any] = dict(reasons(cache)) if updating else {}
        if ac.RETIRING_ANNOTATION in (ac.meta(obj).get("annotations") or {}):
            annotations[ac.RETIRING_ANNOTATION] = None  # wanted again
        patch: dict[str, Any] = {"metadata": {
            "resourceVersion": ac.meta(obj).get("resourceVersion"), "annotations": annotations}}
        if updating:
            # Merge patch: secrets the plan no longer names are removed (null).
            patch["spec"] = {"imagePullSecrets": None, **spec_of(cache)}
        self.fence.check(f"update ImageCache {cache.name}")
        if not await self._patch(cache.name, patch):
            return
        self._grant(obj, cache)
        if updating:
            self._applied("update")
            message = describe(cache)
            log.info("advisor: %s", message)
            await self.events.record(obj, "Normal", "ImageCacheAdvisorUpdated", message)
            await self.node_event("Normal", "ImageCacheAdvisorUpdated", summary(cache))

    async def _patch(self, name: str, patch: Mapping[str, Any]) -> bool:
        try:
            await self.custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, patch,
                                                          _content_type=MERGE_PATCH)
        except ApiException as e:
            if e.status in (404, 409):
                return False  # gone, or changed since read: decided again next cycle
            raise
        return True

    async def _retire(self, listed: Mapping[str, Any], now: float) -> None:
        name = str(ac.meta(listed).get("name"))
        if ac.meta(listed).get("deletionTimestamp"):
            return
        busy = ac.still_used(ac.cache_id_of(listed), self.pods(), now, self.grace)
        retiring = ac.RETIRING_ANNOTATION in (ac.meta(listed).get("annotations") or {})
        if busy is not None and retiring:
            return
        obj = await self._fresh(name)
        if obj is None:
            return
        meta = ac.meta(obj)
        if busy is not None:
            self.fence.check(f"mark ImageCache {name} retiring")
            if await self._patch(name, {"metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "annotations": {ac.RETIRING_ANNOTATION: f"{now:.0f}"}}}):
                await self.events.record(obj, "Normal", "ImageCacheAdvisorRetiring",
                                         f"retired by the advisor's plan; deleted once its "
                                         f"pods have moved ({busy})")
            return
        self.fence.check(f"delete ImageCache {name}")
        try:
            await self.custom.delete_cluster_custom_object(
                GROUP, VERSION, PLURAL, name, body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(
                        uid=meta.get("uid"), resource_version=meta.get("resourceVersion"))))
        except ApiException as e:
            if e.status in (404, 409):
                return  # gone, or changed since read: decided again next cycle
            raise
        self._revoke(name)
        self._applied("retire")
        message = f"deleted ImageCache {name}: retired by the advisor's plan, its pods moved"
        log.info("advisor: %s", message)
        await self.events.record(obj, "Normal", "ImageCacheAdvisorDeleted", message)
        await self.node_event("Normal", "ImageCacheAdvisorDeleted", message)

    def _grant(self, obj: Mapping[str, Any], cache: Any) -> None:
        """The object is the advisor's and its spec is the plan's: its pull secrets are
        granted for its UID (again after a restart), or none when the plan names none."""
        if self.grants is None:
            return
        if not cache.pull_secrets:
            self.grants.revoke(cache.name)
            return
        self.grants.renew(cache.name, str(ac.meta(obj).get("uid") or ""), cache.pull_secrets,
                          cache.images)

    def _revoke(self, name: str) -> None:
        if self.grants is not None:
            self.grants.revoke(name)

    def _applied(self, action: str) -> None:
        if self.metrics is not None:
            self.metrics.advisor_applied.labels(action=action).inc()
