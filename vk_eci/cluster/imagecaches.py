"""The ImageCache controller (SPEC §9): ImageCache objects ⇄ ECI image caches.

One process in the cluster reconciles (leader election on a Lease, :mod:`vk_eci.cluster.leader`).
While leading it runs three things:

- a list+watch of ImageCache objects that keeps a local store and queues each changed object;
- a poller that lists the account's ECI caches in one paged ``DescribeImageCaches`` (not one call
  per object), every ``fast_poll`` seconds while any cache builds and every ``slow_poll`` seconds
  once all are settled, and queues every object so that its status follows ECI;
- a per-object work queue (:class:`vk_eci.cluster.queue.WorkQueue`) whose handler creates or adopts
  the ECI cache, mirrors its status, updates it when ``images``, ``imageCacheSize`` (growing) or
  ``retentionDays`` change (and says when a change needs the object re-created), and deletes it
  behind a finalizer when the object is deleted.

Idempotence: a create carries ``ClientToken`` = the object's UID and the cache is tagged with it;
before creating, a cache of the same name is looked up and adopted, so a crash between the create
and the status write never leaves a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from vk_eci.cloud.errors import EciError, NotFound, Permanent
from vk_eci.cluster import imagecache_status as st
from vk_eci.cluster.imagecache_events import ImageCacheEvents, ObjectEventRecorder
from vk_eci.cluster.imagecache_spec import (
    FINALIZER,
    GROUP,
    PLURAL,
    TAG_UID,
    VERSION,
    ImageCacheSpec,
    Placement,
    RegistryCredential,
    SecretError,
    UpdatePlan,
    create_request,
    credentials_from_secret,
    plan_update,
    spec_from_object,
    update_request,
)
from vk_eci.cluster.informer import Informer
from vk_eci.cluster.leader import LeaderElector
from vk_eci.cluster.queue import Backoff, WorkQueue
from vk_eci.log import caches_logger as log
from vk_eci.metrics import Metrics
from vk_eci.provider import CacheObserver

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class ImageCacheSettings:
    """How the controller runs. Durations are seconds."""

    leader_election: bool = True
    lease_name: str = "vk-eci-imagecache-controller"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    fast_poll: float = 2.0       # while a cache is being built or updated
    slow_poll: float = 60.0      # once every cache is settled
    secret_retry: float = 15.0   # look again at a missing or malformed secret
    create_retry: float = 60.0   # look again after ECI refused a create for good
    workers: int = 4
    max_retries: int = 30
    watch_timeout: int = 300     # server-side watch timeout, then re-list
    region_id: str | None = None
    security_group_id: str | None = None  # CreateImageCache needs where to run the builder
    vswitch_id: str | None = None
    zone_id: str | None = None

    @property
    def placement(self) -> Placement:
        return Placement(self.region_id, self.security_group_id, self.vswitch_id, self.zone_id)


@dataclass
class _Seen:
    cache: Any
    at: float  # loop time the snapshot was taken


def _tags(cache: Any) -> dict[str, str]:
    return {t.key: t.value for t in getattr(cache, "tags", None) or [] if t.key}


def _crd_hint(e: ApiException) -> str:
    return (" - is the CRD imagecaches.eci.alibabacloud.com installed?" if e.status == 404
            else "")


def _now() -> datetime:
    return datetime.now(UTC)


def _should_retry(e: BaseException) -> bool:
    # Permanent ECI answers are handled inside the reconcile; what escapes is transient.
    return not isinstance(e, Permanent)


class ImageCacheController:
    """Reconciles ImageCache objects with ECI image caches; ``await run()`` until cancelled."""

    def __init__(self, api_client: Any, eci_client: Any, *, identity: str,
                 settings: ImageCacheSettings | None = None,
                 events: ObjectEventRecorder | None = None,
                 metrics: Metrics | None = None,
                 observer: CacheObserver | None = None) -> None:
        self.settings = settings or ImageCacheSettings()
        # The node's cache catalog (issue 11): every cache state seen here goes there at once,
        # before any status says Ready, so pods never decide on an older view than ours.
        self._observer = observer
        self.identity = identity
        self._api_client = api_client
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._core: Any = client.CoreV1Api(api_client)
        self._eci = eci_client
        self._events: ObjectEventRecorder = events or ImageCacheEvents(api_client, host=identity)
        self._metrics = metrics
        self._informer = self._new_informer()
        self._caches: dict[str, _Seen] = {}
        self._synced_at: float | None = None
        self._acted_at: dict[str, float] = {}
        self._poll_now = asyncio.Event()
        self._queue: WorkQueue | None = None
        self.leading = False
        self.reconciles = 0  # handler runs while leading (observable in tests)

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
        self._caches.clear()
        self._synced_at = None
        self._queue = WorkQueue(handler=self._handle, should_retry=_should_retry,
                                on_give_up=self._give_up, concurrency=self.settings.workers,
                                max_retries=self.settings.max_retries,
                                backoff=Backoff(base=1.0, cap=60.0), name="imagecaches")
        self.leading = True
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._informer.run(), name="imagecaches:watch")
                tg.create_task(self._poll_loop(), name="imagecaches:poll")
        finally:
            self.leading = False
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
    def _store(self) -> dict[str, dict[str, Any]]:
        return self._informer.cache

    def _remember(self, obj: dict[str, Any]) -> None:
        self._informer.remember(obj)

    def _enqueue(self, name: str) -> None:
        if self._queue is not None:
            self._queue.enqueue(name)

    def _forget(self, name: str, _obj: Any) -> None:
        self._acted_at.pop(name, None)
        if self._queue is not None:
            self._queue.forget(name)

    # ---- polling ECI ------------------------------------------------------------------------

    def _building(self) -> bool:
        for obj in self._store.values():
            status = obj.get("status") or {}
            phase = status.get("phase")
            seen = self._caches.get(status.get("imageCacheId") or "")
            # No phase yet: its cache is about to be created, so its build is about to start.
            if phase is None or phase in st.BUILDING or (
                    seen is not None and seen.cache.status in st.BUILDING):
                return True
            if obj["metadata"].get("deletionTimestamp"):
                return True
        return False

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._poll_now.clear()
            try:
                started = loop.time()
                caches = await self._eci.describe_image_caches()
                before = set(self._caches)
                self._caches = {c.image_cache_id: _Seen(c, started) for c in caches
                                if c.image_cache_id}
                for cache in caches:
                    self._saw(cache)
                for gone in before - set(self._caches):
                    self._gone(gone)
                self._synced_at = started
                # A write older than this listing no longer matters to _cache(): forget it, so
                # that the map holds only recent writes (a missed DELETED cannot leak it).
                self._acted_at = {n: t for n, t in self._acted_at.items() if t >= started}
                for name in list(self._store):
                    self._enqueue(name)
            except asyncio.CancelledError:
                raise
            except EciError as e:
                log.warning("listing ECI image caches failed: %s", e)
            except Exception as e:
                log.exception("listing ECI image caches failed: %s", e)
            interval = self.settings.fast_poll if self._building() else self.settings.slow_poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._poll_now.wait()

    async def _cache(self, name: str, cache_id: str) -> Any | None:
        """The ECI cache ``cache_id``: from the last listing if that is newer than our last write
        for ``name``, else described afresh. None when ECI has no such cache."""
        acted = self._acted_at.get(name, float("-inf"))
        seen = self._caches.get(cache_id)
        if seen is not None and seen.at > acted:
            return seen.cache
        if seen is None and self._synced_at is not None and self._synced_at > acted:
            return None
        found = await self._eci.describe_image_caches(ids=[cache_id])
        found = [c for c in found if c.image_cache_id == cache_id]
        if not found:
            self._caches.pop(cache_id, None)
            self._gone(cache_id)
            return None
        self._caches[cache_id] = _Seen(found[0], asyncio.get_running_loop().time())
        self._saw(found[0])
        return found[0]

    def _saw(self, cache: Any) -> None:
        if self._observer is not None:
            self._observer.observe(cache)

    def _gone(self, cache_id: str) -> None:
        if self._observer is not None:
            self._observer.observe_gone(cache_id)

    def _acted(self, name: str) -> None:
        self._acted_at[name] = asyncio.get_running_loop().time()
        self._poll_now.set()

    # ---- writing to the API server ----------------------------------------------------------

    async def _patch_status(self, obj: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
        if not patch:
            return obj
        name = obj["metadata"]["name"]
        result = await self._custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": dict(patch)}, _content_type=MERGE_PATCH)
        self._remember(result)
        return dict(result)

    async def _set_finalizers(self, obj: dict[str, Any], finalizers: list[str]) -> dict[str, Any]:
        meta = obj["metadata"]
        # resourceVersion in the patch makes it conditional: never drop someone's finalizer.
        body = {"metadata": {"finalizers": finalizers,
                             "resourceVersion": meta.get("resourceVersion")}}
        result = await self._custom.patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, meta["name"], body, _content_type=MERGE_PATCH)
        self._remember(result)
        return dict(result)

    async def _event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        log.info("ImageCache %s: %s: %s", obj["metadata"]["name"], reason, message,
                 extra={"imagecache": obj["metadata"]["name"]})
        await self._events.record(obj, type, reason, message)

    # ---- the handler ------------------------------------------------------------------------

    async def _give_up(self, name: str, error: BaseException, attempts: int) -> None:
        obj = self._store.get(name)
        log.error("ImageCache %s: giving up after %d attempts: %s", name, attempts, error)
        if obj is not None:
            await self._event(obj, "Warning", "ReconcileFailed",
                              f"gave up after {attempts} attempts: {error}")

    async def _handle(self, name: str) -> float | None:
        obj = self._store.get(name)
        if obj is None:
            return None
        self.reconciles += 1
        try:
            return await self._reconcile(obj)
        except ApiException as e:
            if e.status == 404:
                return None  # the object went away under us
            raise

    async def _reconcile(self, obj: dict[str, Any]) -> float | None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return await self._finalize(obj)
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            obj = await self._set_finalizers(obj, [*finalizers, FINALIZER])
        status = obj.get("status") or {}
        try:
            spec = spec_from_object(obj)
        except (SecretError, ValueError) as e:
            return await self._invalid(obj, status, "InvalidSpec", str(e), None)
        cache_id = status.get("imageCacheId")
        if not cache_id:
            return await self._create_or_adopt(obj, spec, status)
        cache = await self._cache(spec.name, cache_id)
        if cache is None:
            return await self._lost(obj, spec, status)
        return await self._mirror_and_update(obj, spec, status, cache)

    async def _invalid(self, obj: dict[str, Any], status: Mapping[str, Any], reason: str,
                       message: str, retry: float | None) -> float | None:
        """A problem the user must fix: an event and the status say what; retried later."""
        if status.get("reason") != reason or status.get("message") != message:
            await self._event(obj, "Warning", reason, message)
            patch: dict[str, Any] = {"reason": reason, "message": message,
                                     "lastUpdatedTime": st.format_time(_now())}
            if not status.get("phase"):
                patch["phase"] = st.PENDING
            await self._patch_status(obj, patch)
        return retry

    async def _credentials(self, spec: ImageCacheSpec) -> list[RegistryCredential]:
        creds: list[RegistryCredential] = []
        for ref in spec.secrets:
            try:
                secret = await self._core.read_namespaced_secret(ref.name, ref.namespace)
            except ApiException as e:
                if e.status == 404:
                    raise SecretError(str(ref), "not found") from None
                if e.status == 403:
                    raise SecretError(str(ref), "not readable by the controller (forbidden)") \
                        from None
                raise
            creds.extend(credentials_from_secret(str(ref), secret.type, secret.data))
        return creds

    async def _create_or_adopt(self, obj: dict[str, Any], spec: ImageCacheSpec,
                               status: Mapping[str, Any]) -> float | None:
        existing = [c for c in await self._eci.describe_image_caches(name=spec.eci_name)
                    if c.image_cache_name == spec.eci_name]
        ours = [c for c in existing if _tags(c).get(TAG_UID) == spec.uid]
        candidates = ours or existing
        if candidates:
            # Prefer a usable cache over a failed one, then the newest.
            candidates.sort(key=lambda c: (c.status != st.FAILED, c.creation_time or ""))
            cache = candidates[-1]
            self._caches[cache.image_cache_id] = _Seen(cache, asyncio.get_running_loop().time())
            self._saw(cache)
            new = st.status_from_cache(cache, status, _now())
            # A cache we created already holds this generation; someone else's may need an update.
            new["observedGeneration"] = spec.generation if ours else 0
            obj = await self._patch_status(obj, st.merge_patch(status, new))
            if not ours:
                await self._event(obj, "Normal", "Adopted",
                                  f"adopted the existing ECI image cache {cache.image_cache_id} "
                                  f"of the same name {spec.eci_name}")
            else:
                await self._event(obj, "Normal", "Recovered",
                                  f"found ECI image cache {cache.image_cache_id} created for "
                                  f"this object")
            return None
        try:
            creds = await self._credentials(spec)
        except SecretError as e:
            return await self._invalid(obj, status, "InvalidImagePullSecret", str(e),
                                       self.settings.secret_retry)
        try:
            cache_id = await self._eci.create_image_cache(
                create_request(spec, creds, self.settings.placement))
        except NotFound:
            raise
        except Permanent as e:
            return await self._invalid(obj, status, "CreateFailed",
                                       f"ECI refused to create image cache {spec.eci_name}: {e}",
                                       self.settings.create_retry)
        self._acted(spec.name)
        now = st.format_time(_now())
        await self._patch_status(obj, {
            "phase": st.CREATING, "progress": "0%", "imageCacheId": cache_id,
            "imageCacheName": spec.eci_name, "startTime": now, "lastUpdatedTime": now,
            "observedGeneration": spec.generation, "reason": None, "message": None,
            # Built from the whole spec: no earlier refusal still holds.
            "conditions": None,
        })
        await self._event(obj, "Normal", "Created",
                          f"created ECI image cache {cache_id} of {len(spec.images)} image(s), "
                          f"{spec.size_gib} GiB")
        return None

    async def _lost(self, obj: dict[str, Any], spec: ImageCacheSpec,
                    status: Mapping[str, Any]) -> float | None:
        """The ECI cache is gone: say so once; a new generation of the object builds a new one."""
        if status.get("phase") in st.GONE:
            if spec.generation > int(status.get("observedGeneration") or 0):
                obj = await self._patch_status(obj, {"imageCacheId": None})
                return await self._create_or_adopt(obj, spec, obj.get("status") or {})
            return None
        new = st.gone_status(status, _now())
        await self._patch_status(obj, new)
        await self._event(obj, "Warning", new["phase"], new["message"])
        return None

    async def _mirror_and_update(self, obj: dict[str, Any], spec: ImageCacheSpec,
                                 status: Mapping[str, Any], cache: Any) -> float | None:
        new = st.status_from_cache(cache, status, _now())
        new["observedGeneration"] = int(status.get("observedGeneration") or 0)
        if st.changed(status, new):
            obj = await self._patch_status(obj, st.merge_patch(status, new))
            await self._transition_event(obj, status, new)
        if spec.generation == new["observedGeneration"]:
            return None
        if cache.status == st.FAILED:
            # A failed cache cannot be updated; a changed spec (say, a secret added) rebuilds it.
            return await self._rebuild(obj, spec, cache)
        plan = plan_update(spec, cache)
        if not plan.sends:
            await self._observed(obj, spec, plan)
            return None
        if cache.status not in st.UPDATABLE:
            return self.settings.fast_poll  # ECI updates only Ready/UpdateFailed caches
        try:
            # Credentials only matter to images ECI pulls again.
            creds = await self._credentials(spec) if plan.images else []
        except SecretError as e:
            return await self._invalid(obj, obj.get("status") or {}, "InvalidImagePullSecret",
                                       str(e), self.settings.secret_retry)
        try:
            await self._eci.update_image_cache(
                update_request(cache.image_cache_id, spec, creds, self.settings.region_id, plan))
        except NotFound:
            self._caches.pop(cache.image_cache_id, None)
            self._acted(spec.name)
            return 0.0
        except Permanent as e:
            obj = await self._observed(obj, spec, plan)
            return await self._invalid(obj, obj.get("status") or {}, "UpdateFailed",
                                       f"ECI refused to update image cache "
                                       f"{cache.image_cache_id}: {e}", None)
        self._acted(spec.name)
        # Only new images start a build; a size or retention change leaves the cache Ready.
        await self._observed(obj, spec, plan, {"phase": st.UPDATING} if plan.images else {})
        await self._event(obj, "Normal", "Updating" if plan.images else "Updated",
                          f"{'updating' if plan.images else 'updated'} ECI image cache "
                          f"{cache.image_cache_id}: {plan.describe(spec)}")
        return None

    async def _observed(self, obj: dict[str, Any], spec: ImageCacheSpec, plan: UpdatePlan,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Mark ``spec``'s generation handled; a field ECI cannot change in place is said once,
        in a Warning event and the ``SpecApplied`` condition, never silently dropped."""
        status = obj.get("status") or {}
        patch: dict[str, Any] = {"observedGeneration": spec.generation, **(extra or {})}
        had = any(c.get("type") == st.SPEC_APPLIED for c in status.get("conditions") or [])
        if plan.refused or had:
            patch["conditions"] = st.with_condition(
                status.get("conditions"),
                st.spec_applied_condition(spec.generation, plan.refused, _now()))
        if plan.sends or plan.refused:
            patch.update(lastUpdatedTime=st.format_time(_now()), reason=None, message=None)
        obj = await self._patch_status(obj, patch)
        for refused in plan.refused:
            await self._event(obj, "Warning", "RecreateRequired", refused)
        return obj

    async def _rebuild(self, obj: dict[str, Any], spec: ImageCacheSpec, cache: Any) -> float | None:
        """A failed cache cannot be updated: replace it when the object's spec changed."""
        with contextlib.suppress(NotFound):
            await self._eci.delete_image_cache(cache.image_cache_id)
        self._caches.pop(cache.image_cache_id, None)
        self._gone(cache.image_cache_id)
        await self._event(obj, "Normal", "Rebuilding",
                          f"deleted failed ECI image cache {cache.image_cache_id} to build the "
                          f"changed spec")
        obj = await self._patch_status(obj, {"imageCacheId": None, "phase": st.PENDING,
                                             "progress": "0%", "expireDateTime": None,
                                             "events": None, "conditions": None,
                                             "reason": None, "message": None})
        self._acted(spec.name)
        return await self._create_or_adopt(obj, spec, obj.get("status") or {})

    async def _transition_event(self, obj: dict[str, Any], old: Mapping[str, Any],
                                new: Mapping[str, Any]) -> None:
        before, after = old.get("phase"), new.get("phase")
        if before == after:
            return
        cache_id = new.get("imageCacheId")
        if after == st.READY:
            await self._event(obj, "Normal", "Ready",
                              f"ECI image cache {cache_id} is Ready with "
                              f"{len(new.get('images') or [])} image(s)")
        elif after == st.FAILED:
            await self._event(obj, "Warning", "Failed",
                              f"ECI image cache {cache_id} failed to build: {new.get('reason')}: "
                              f"{new.get('message')}; ECI removes it at "
                              f"{new.get('expireDateTime')}")
        elif after == st.UPDATE_FAILED:
            await self._event(obj, "Warning", "UpdateFailed",
                              f"ECI image cache {cache_id} failed to update: "
                              f"{new.get('message')}")
        else:
            await self._event(obj, "Normal", str(after),
                              f"ECI image cache {cache_id} is {after} ({new.get('progress')})")

    async def _finalize(self, obj: dict[str, Any]) -> float | None:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return None
        status = obj.get("status") or {}
        ids: set[str] = set()
        if status.get("imageCacheId"):
            ids.add(status["imageCacheId"])
        try:
            spec = spec_from_object(obj)
            # A cache created just before a crash, whose id never reached the status.
            ids.update(c.image_cache_id
                       for c in await self._eci.describe_image_caches(name=spec.eci_name)
                       if _tags(c).get(TAG_UID) == spec.uid)
        except ValueError:
            pass
        for cache_id in sorted(ids):
            try:
                await self._eci.delete_image_cache(cache_id)
            except NotFound:
                self._gone(cache_id)
                continue
            self._caches.pop(cache_id, None)
            self._gone(cache_id)
            await self._event(obj, "Normal", "Deleted", f"deleted ECI image cache {cache_id}")
        await self._set_finalizers(obj, [f for f in finalizers if f != FINALIZER])
        return None
