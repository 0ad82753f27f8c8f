"""The provider's image-cache step around ``CreateContainerGroup`` (:class:`PodCacheChooser`).

It decides with :func:`vk_eci.cloud.caches.choice.decide_for_pod`, emits the decision's events,
keeps pods waiting for their explicit cache and wakes them when it is Ready, records the choice
on the pod, hands what ECI then reports to :class:`vk_eci.cloud.caches.report.CacheReporter`, and
has :class:`vk_eci.cloud.caches.autocreate.CacheBuilder` build a cache for a constrained miss.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from vk_eci.cloud.api.errors import EciError
from vk_eci.cloud.caches.autocreate import ANONYMOUS, BuildFor, CacheBuilder
from vk_eci.cloud.caches.catalog import CacheCatalog, CacheInfo
from vk_eci.cloud.caches.choice import decide_for_pod, pod_images, pod_ref
from vk_eci.cloud.caches.decision import WARNING, CacheChoiceSettings, CacheDecision
from vk_eci.cloud.caches.provenance import registries_of_servers
from vk_eci.cloud.caches.pull_policy import containers_of
from vk_eci.cloud.caches.report import CHOSEN_BY_ANNOTATION, Annotate, CacheReporter, Expected
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.cloud.translation.context import CacheDecision as TranslateCache
from vk_eci.cloud.translation.credentials import RegistryCredential
from vk_eci.log import caches_logger
from vk_eci.metrics import Metrics
from vk_eci.provider import EventRecorder

# Pods whose counted lookup outcomes the chooser remembers (a few bytes each).
COUNTED_PODS_LIMIT = 20_000


class PodCacheChooser:
    """The provider's image-cache step around ``CreateContainerGroup``.

    ``before_create`` decides, emits the decision's events through the provider's recorder and
    raises when the pod must wait (remembering which cache it waits for); ``after_create``
    records the choice on the pod. When the catalog sees a waited-for cache become Ready, every
    callable in ``wake`` is called with the waiting pods' ``namespace/name`` (the pod
    controller's ``requeue``), so they start at once rather than at their next back-off.
    ``annotate(pod, annotations)`` patches the pod (set by the cluster side; None: not recorded).
    """

    async def __call__(self, pod: Any,
                       credentials: Sequence[RegistryCredential] = ()) -> TranslateCache:
        """The provider's ``cache_decider``: decide (or raise to wait), record the choice on
        the pod, and hand translation what it needs. The choice is recorded just before the
        create call: a create that then fails is retried and re-decided, which rewrites it.
        ``credentials``: those of the pod's own ``imagePullSecrets``; their registries say
        which caches it may use, and a cache the node builds for it is built with them."""
        registries = registries_of_servers(c.server for c in credentials)
        decision = await self.before_create(pod, registries)
        namespace = str(getattr(getattr(pod, "metadata", None), "namespace", None) or "")
        await self.after_create(pod, decision, BuildFor(namespace, tuple(credentials)))
        return decision.to_context()

    def __init__(self, catalog: CacheCatalog, recorder: EventRecorder, *,
                 settings: CacheChoiceSettings | None = None,
                 metrics: Metrics | None = None, annotate: Annotate | None = None,
                 builder: CacheBuilder | None = None) -> None:
        self.catalog = catalog
        self.recorder = recorder
        self.settings = settings or CacheChoiceSettings()
        self.metrics = metrics
        self.reporter = CacheReporter(catalog, recorder, metrics=metrics)
        self.annotate = annotate
        self.builder = builder
        self._builds: set[asyncio.Task[None]] = set()
        self.wake: list[Callable[[str], None]] = []
        self._waiting: dict[str, set[str]] = {}
        # Lookup outcomes already counted, by pod UID (least recently decided first): a pod
        # retried while it waits for its cache counts once per outcome, not once per retry.
        # The chooser never hears of deletions, so the oldest pods are forgotten past a bound.
        self._counted: OrderedDict[str, set[tuple[str, str]]] = OrderedDict()
        catalog.on_ready(self._cache_ready)

    async def before_create(self, pod: Any,
                            credentials: frozenset[str] = frozenset()) -> CacheDecision:
        ref = pod_ref(pod)
        decision = await decide_for_pod(pod, self.catalog, settings=self.settings,
                                        metrics=self.metrics, counted=self._counted_for(pod),
                                        credentials=credentials)
        for event in decision.events:
            await self.recorder.record(pod, event.type, event.reason, event.message)
        if decision.blocked and decision.cache_id and not decision.invalid \
                and decision.result != "not_permitted":
            self._waiting.setdefault(decision.cache_id, set()).add(ref)
        else:
            self._forget(ref)
        decision.raise_if_blocked(ref, fail=decision.fail_on_create_err)
        return decision

    @property
    def annotate(self) -> Annotate | None:
        return self.reporter.annotate

    @annotate.setter
    def annotate(self, annotate: Annotate | None) -> None:
        self.reporter.annotate = annotate

    async def group_events(self, pod: Any, events: Sequence[GroupEvent]) -> None:
        """The provider's hook on every listing of the pod's group (what ECI reports)."""
        await self.reporter.group_events(pod, events)

    def _build(self, pod: Any, images: Sequence[str], owner: BuildFor) -> None:
        """Build a cache of ``images`` in the background (the pod does not wait for it), with
        ``owner``'s credentials for their registries."""
        if self.builder is None or not self.builder.wanted(images, owner):
            return
        builder = self.builder

        async def build() -> None:
            try:
                await builder.build(images, owner)
            except EciError as e:
                message = f"could not build an image cache of the pod's images: {e}"
                caches_logger.warning(message, extra={"pod": pod_ref(pod)})
                await self.recorder.record(pod, WARNING, "ImageCacheBuildFailed", message)

        task = asyncio.get_running_loop().create_task(build(), name="image-cache-build")
        self._builds.add(task)
        task.add_done_callback(self._builds.discard)

    async def after_create(self, pod: Any, decision: CacheDecision,
                           owner: BuildFor = ANONYMOUS) -> None:
        if decision.mode is not None and not decision.blocked:
            images, _ = pod_images(containers_of(pod))
            self.reporter.expect(pod, Expected(
                images=tuple(images), node_choice=decision.image_snapshot_id,
                server_side=decision.auto_match_image_cache,
                credentialed=registries_of_servers(owner.servers)))
            if decision.build_cache:
                self._build(pod, images, owner)
        if not decision.annotations or self.annotate is None:
            return
        chosen_by = "eci" if decision.auto_match_image_cache else "node"
        try:
            await self.annotate(pod, {**decision.annotations, CHOSEN_BY_ANNOTATION: chosen_by})
        except Exception as e:
            # The group exists; failing the create now would only retry it for a label.
            caches_logger.warning("could not record the image cache on pod %s: %s",
                                  pod_ref(pod), e, extra={"pod": pod_ref(pod)})

    def _counted_for(self, pod: Any) -> set[tuple[str, str]]:
        metadata = getattr(pod, "metadata", None)
        key = str(getattr(metadata, "uid", None) or pod_ref(pod))
        seen = self._counted.pop(key, None)
        if seen is None:
            seen = set()
            while len(self._counted) >= COUNTED_PODS_LIMIT:
                self._counted.popitem(last=False)
        self._counted[key] = seen
        return seen

    def _forget(self, ref: str) -> None:
        for cache_id in [c for c, refs in self._waiting.items() if ref in refs]:
            self._waiting[cache_id].discard(ref)
            if not self._waiting[cache_id]:
                del self._waiting[cache_id]

    def _cache_ready(self, info: CacheInfo) -> None:
        for ref in sorted(self._waiting.pop(info.cache_id, set())):
            for wake in self.wake:
                wake(ref)
