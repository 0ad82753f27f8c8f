"""The ImageCache controller (docs/IMAGE_CACHES.md): ImageCache objects ⇄ ECI image caches.

One process in the cluster reconciles (leader election on a Lease,
:mod:`vk_eci.cluster.kube.leader`).
While leading it runs three things:

- an :class:`~vk_eci.cluster.kube.informer.Informer` of ImageCache objects: its store is the
  controller's view of the objects, and each changed object is queued;
- the ECI poller (:mod:`vk_eci.cluster.imagecaches.observe`), which lists the account's caches and
  queues every object so that its status follows ECI;
- a per-object work queue (:class:`vk_eci.cluster.kube.queue.WorkQueue`) whose handler,
  :meth:`ImageCacheController.reconcile`, runs one step, each in a module named for it:
  create or adopt the ECI cache (:mod:`~vk_eci.cluster.imagecaches.create`), mirror its status and
  update it (:mod:`~vk_eci.cluster.imagecaches.update`), delete it behind a finalizer when the
  object is deleted (:mod:`~vk_eci.cluster.imagecaches.finalize`).

This module holds the lifecycle and what every step shares: writes to the API server (status,
finalizers, events) and the user-facing "invalid" report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from vk_eci.cloud.api.errors import Permanent
from vk_eci.cluster.imagecaches import status as st
from vk_eci.cluster.imagecaches.context import ImageCacheApi, ImageCacheSettings
from vk_eci.cluster.imagecaches.create import create_or_adopt, disown, lost
from vk_eci.cluster.imagecaches.credentials import read_credentials
from vk_eci.cluster.imagecaches.events import ImageCacheEvents, ObjectEventRecorder
from vk_eci.cluster.imagecaches.finalize import finalize
from vk_eci.cluster.imagecaches.observe import EciView
from vk_eci.cluster.imagecaches.owner import not_ours
from vk_eci.cluster.imagecaches.refresh import PURGE, purge, refresh_period
from vk_eci.cluster.imagecaches.spec import (
    FINALIZER,
    GROUP,
    PLURAL,
    VERSION,
    ImageCacheSpec,
    RegistryCredential,
    SecretError,
    spec_from_object,
)
from vk_eci.cluster.imagecaches.update import mirror_and_update
from vk_eci.cluster.kube.informer import Informer
from vk_eci.cluster.kube.leader import LeaderElector
from vk_eci.cluster.kube.queue import Backoff, WorkQueue
from vk_eci.log import caches_logger as log
from vk_eci.metrics import Metrics
from vk_eci.provider import CacheObserver

MERGE_PATCH = "application/merge-patch+json"


def _crd_hint(e: ApiException) -> str:
    return (" - is the CRD imagecaches.eci.alibabacloud.com installed?" if e.status == 404
            else "")


def _should_retry(e: BaseException) -> bool:
    # Permanent ECI answers are handled inside the reconcile; what escapes is transient.
    return not isinstance(e, Permanent)


class ImageCacheController:
    """Reconciles ImageCache objects with ECI image caches; ``await run()`` until cancelled."""

    def __init__(self, api_client: Any, eci_client: Any, *, identity: str,
                 settings: ImageCacheSettings | None = None,
                 events: ObjectEventRecorder | None = None,
                 metrics: Metrics | None = None,
                 observer: CacheObserver | None = None,
                 on_leading: Callable[[bool], None] | None = None) -> None:
        self.settings = settings or ImageCacheSettings()
        # Told when this process starts and stops leading (its share of the account's budget
        # follows: docs/RELIABILITY.md "One account budget").
        self._on_leading = on_leading
        self.identity = identity
        self._api_client = api_client
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._core: Any = client.CoreV1Api(api_client)
        self.eci: ImageCacheApi = eci_client
        self._events: ObjectEventRecorder = events or ImageCacheEvents(api_client, host=identity)
        self._metrics = metrics
        self._observer = observer
        self._informer = self._new_informer()
        self.view = EciView(eci_client, observer, fast_poll=self.settings.fast_poll,
                            slow_poll=self.settings.slow_poll,
                            store=lambda: self._informer.cache, enqueue=self._enqueue)
        self._queue: WorkQueue | None = None
        self.leading = False
        self.reconciles = 0  # handler runs while leading (observable in tests)
        if self.settings.grants is not None:
            # A grant made after the object was first seen: build it now, not at the retry.
            self.settings.grants.listeners.append(self._enqueue)

    # ---- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile while leading (or always, without leader election); returns when cancelled."""
        s = self.settings
        if not s.leader_election:
            await self._lead()
            return
        elector = LeaderElector(self._api_client, s.lease_name, s.lease_namespace, self.identity,
                                lease_duration=s.lease_duration, renew_deadline=s.renew_deadline,
                                retry_period=s.retry_period)
        await elector.run(self._lead)

    async def _lead(self) -> None:
        log.info("ImageCache controller %s starts reconciling", self.identity)
        self._informer = self._new_informer()  # each term lists afresh
        self.view.reset()
        self._queue = WorkQueue(handler=self._handle, should_retry=_should_retry,
                                on_give_up=self._give_up, concurrency=self.settings.workers,
                                max_retries=self.settings.max_retries,
                                backoff=Backoff(base=1.0, cap=60.0), name="imagecaches")
        self.leading = True
        if self._on_leading is not None:
            self._on_leading(True)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._informer.run(), name="imagecaches:watch")
                tg.create_task(self.view.poll_loop(), name="imagecaches:poll")
        finally:
            self.leading = False
            if self._on_leading is not None:
                self._on_leading(False)
            await self._queue.close(grace=2.0)
            log.info("ImageCache controller %s stops reconciling", self.identity)

    # ---- watching objects -------------------------------------------------------------------

    def _new_informer(self) -> Informer:
        informer = Informer("ImageCaches", self._custom.list_cluster_custom_object,
                            GROUP, VERSION, PLURAL, logger=log,
                            watch_seconds=self.settings.watch_timeout, backoff_cap=5.0,
                            hint=_crd_hint)
        informer.add_handler(self._enqueue, self._forget)
        return informer

    @property
    def _acted_at(self) -> dict[str, float]:
        return self.view.acted_at

    def _remember(self, obj: dict[str, Any]) -> None:
        self._informer.remember(obj)

    def _enqueue(self, name: str) -> None:
        if self._queue is not None:
            self._queue.enqueue(name)

    def _forget(self, name: str, _obj: Any) -> None:
        self.view.forget(name)
        if self._queue is not None:
            self._queue.forget(name)

    # ---- writing to the API server ----------------------------------------------------------

    async def patch_status(self, obj: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
        if not patch:
            return obj
        name = obj["metadata"]["name"]
        result = await self._custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": dict(patch)}, _content_type=MERGE_PATCH)
        self._remember(result)
        return dict(result)

    async def set_finalizers(self, obj: dict[str, Any], finalizers: list[str]) -> dict[str, Any]:
        meta = obj["metadata"]
        # resourceVersion in the patch makes it conditional: never drop someone's finalizer.
        body = {"metadata": {"finalizers": finalizers,
                             "resourceVersion": meta.get("resourceVersion")}}
        result = await self._custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, meta["name"], body, _content_type=MERGE_PATCH)
        self._remember(result)
        return dict(result)

    async def set_annotation(self, obj: dict[str, Any], key: str,
                             value: str | None) -> dict[str, Any]:
        """Set (None: remove) one annotation of the object (a merge patch of that key only)."""
        body = {"metadata": {"annotations": {key: value}}}
        result = await self._custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, obj["metadata"]["name"], body, _content_type=MERGE_PATCH)
        self._remember(result)
        return dict(result)

    async def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        log.log(logging.WARNING if type == "Warning" else logging.INFO, "ImageCache %s: %s: %s",
                obj["metadata"]["name"], reason, message,
                extra={"imagecache": obj["metadata"]["name"]})
        await self._events.record(obj, type, reason, message)

    # ---- the handler ------------------------------------------------------------------------

    async def _give_up(self, name: str, error: BaseException, attempts: int) -> None:
        obj = self._informer.cache.get(name)
        log.error("ImageCache %s: giving up after %d attempts: %s", name, attempts, error)
        if obj is not None:
            await self.event(obj, "Warning", "ReconcileFailed",
                             f"gave up after {attempts} attempts: {error}")

    async def _handle(self, name: str) -> float | None:
        obj = self._informer.cache.get(name)
        if obj is None:
            return None
        self.reconciles += 1
        try:
            return await self.reconcile(obj)
        except ApiException as e:
            if e.status == 404:
                return None  # the object went away under us
            raise

    async def reconcile(self, obj: dict[str, Any]) -> float | None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return await finalize(self, obj)
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            obj = await self.set_finalizers(obj, [*finalizers, FINALIZER])
        status = obj.get("status") or {}
        try:
            spec = spec_from_object(obj)
            period = refresh_period(meta.get("annotations"))
        except (SecretError, ValueError) as e:
            return await self.invalid(obj, status, "InvalidSpec", str(e), None)
        if status.get("imageCacheId") and self._observer is not None:
            # The node's pull-policy rule reads the object's own period (docs/IMAGE_CACHES.md).
            refreshed = st.parse_time(status.get("lastRefreshTime"))
            self._observer.observe_refresh(str(status["imageCacheId"]), period,
                                           refreshed.timestamp() if refreshed else None)
        if PURGE in (meta.get("annotations") or {}):
            await purge(self, obj, status)
            return None
        cache_id = status.get("imageCacheId")
        if not cache_id:
            return await create_or_adopt(self, obj, spec, status)
        cache = await self.view.cache(spec.name, cache_id)
        if cache is None:
            return await lost(self, obj, spec, status)
        why = self.not_ours(cache, spec.name, spec.uid)
        if why is not None:
            return await disown(self, obj, spec, cache_id, why)
        return await mirror_and_update(self, obj, spec, status, cache)

    def not_ours(self, cache: Any, name: str, uid: str) -> str | None:
        """Why ECI ``cache`` is not ImageCache ``name``/``uid``'s to touch; None if it is."""
        return not_ours(cache, name, uid, self.settings.cluster_name,
                        self.settings.legacy_cluster_name)

    async def invalid(self, obj: dict[str, Any], status: Mapping[str, Any], reason: str,
                      message: str, retry: float | None) -> float | None:
        """A problem the user must fix: an event and the status say what; retried later."""
        if status.get("reason") != reason or status.get("message") != message:
            await self.event(obj, "Warning", reason, message)
            patch: dict[str, Any] = {"reason": reason, "message": message,
                                     "lastUpdatedTime": st.format_time(st.now())}
            if not status.get("phase"):
                patch["phase"] = st.PENDING
            await self.patch_status(obj, patch)
        return retry

    async def credentials(self, spec: ImageCacheSpec) -> list[RegistryCredential]:
        """The credentials of the object's pull secrets (cluster/imagecaches/credentials.py)."""
        return await read_credentials(self._core, spec, self.settings)
