"""The pod controller: pods bound to this node become ECI container groups, and back.

One :class:`~vk_eci.cluster.kube.queue.WorkQueue` worker per pod creates or deletes it through the
provider (virtual-kubelet's ``PodLifecycleHandler``); errors are retried by class (throttled
and transient ones with back-off, permanent ones reported once as ``ProviderFailed``). Status
flows the other way in :mod:`vk_eci.cluster.pods.sync`. Pods the node cannot run are refused with
one Warning event and never reach ECI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cloud.api.errors import EciError, MissingDependency, OutOfStock, Permanent, Throttled
from vk_eci.cloud.caches.annotations import CHOSEN_CACHE_ANNOTATION, CHOSEN_MATCH_ANNOTATION
from vk_eci.cloud.placement.annotations import FAIL_STRATEGY
from vk_eci.cloud.placement.data_cache import host_path_refusal
from vk_eci.cluster.kube.decode import unanswered
from vk_eci.cluster.kube.events import KubeEventRecorder
from vk_eci.cluster.kube.fence import Fence, Fenced
from vk_eci.cluster.kube.informer import pod_informer
from vk_eci.cluster.kube.queue import Backoff, WorkQueue
from vk_eci.config import Settings
from vk_eci.log import pods_logger, redact
from vk_eci.metrics import Metrics
from vk_eci.provider import PodLifecycleHandler

FAIL_ON_CREATE_ERR = "k8s.aliyun.com/pod-fail-on-create-err"
POLICY_DENIED = "PolicyDenied"  # the provider's refusal by the profile's policy (docs/PROFILE.md)
PROVIDER_FAILED = "ProviderFailed"
TERMINAL = ("Succeeded", "Failed")
# After giving up on a transient error (retries exhausted) the pod is looked at again this
# much later, since the cause (ECI down, quota) usually passes; permanent errors are not retried.
RETRY_AFTER_GIVE_UP = 60.0

RETRY_UPDATE = 10.0  # seconds before a failed in-place update is tried again

LegacyAdopter = Callable[[Mapping[str, tuple[str, str]]], Awaitable[Collection[str]]]


@dataclass(slots=True)  # one per pod: no __dict__ (~250 bytes a pod at 10,000)
class Tracked:
    """What the node knows about one pod beyond the API object."""

    uid: str
    first_seen: float
    created: bool = False  # its container group exists (or existed) in ECI
    failed: bool = False  # creation gave up; not retried until the pod changes UID
    refused: bool = False  # unsupported: never sent to ECI
    denied: bool = False  # the profile's policy refused it: looked at again when that changes
    started: bool = False  # start duration observed
    missing: int = 0  # status cycles in a row in which ECI lacked its group
    create_seconds: float | None = None  # create duration, observed once its cache is known
    images: tuple[str, ...] | None = None  # the images the provider last saw (update_pod)


def unsupported_reason(pod: Any) -> str | None:
    """Why this node cannot run ``pod`` on ECI, or None when it can."""
    for ref in pod.metadata.owner_references or []:
        if ref.kind == "DaemonSet":
            return f"DaemonSet pods ({ref.name}) are not run on the virtual node"
    spec = pod.spec
    for flag, what in ((spec.host_network, "hostNetwork"), (spec.host_pid, "hostPID"),
                       (spec.host_ipc, "hostIPC")):
        if flag:
            return f"{what} is not supported on ECI"
    for volume in spec.volumes or []:
        refusal = host_path_refusal(pod.metadata.annotations, volume) \
            if volume.host_path is not None else None
        if refusal is not None:
            return f"volume {volume.name!r} of type hostPath: {refusal}"
    for container in [*(spec.init_containers or []), *(spec.containers or [])]:
        sc = container.security_context
        if sc is not None and sc.privileged:
            return f"container {container.name!r} is privileged, which ECI does not allow"
    return None


def cache_result(pod: Any) -> str:
    """The ``cache_result`` label of a pod's create/start durations, from the cache choice the
    provider recorded on it: ``hit`` (the cache holds every image), ``partial``, ``miss`` (a
    cache was asked for, none used) or ``none`` (no cache asked for)."""
    annotations = pod.metadata.annotations or {}
    chosen = annotations.get(CHOSEN_CACHE_ANNOTATION)
    if chosen is None:
        return "none"
    if chosen == "none":
        return "miss"
    matched, _, total = str(annotations.get(CHOSEN_MATCH_ANNOTATION, "")).partition("/")
    if matched.isdigit() and total.isdigit() and int(matched) < int(total):
        return "partial"
    return "hit"


def fail_on_create_err(pod: Any) -> bool:
    value = (pod.metadata.annotations or {}).get(FAIL_ON_CREATE_ERR, "")
    return str(value).strip().lower() == "true" or fail_fast(pod)


def images_of(pod: Any) -> tuple[str, ...]:
    """The pod's container and init container images, in order."""
    spec = pod.spec
    return tuple(str(c.image) for c in [*(spec.init_containers or []), *(spec.containers or [])])


def fail_fast(pod: Any) -> bool:
    """``eci-fail-strategy: fail-fast``: a failed create fails the pod at once (ProviderFailed)
    instead of keeping it Pending and retrying (fail-back, fail-over: ECI's default)."""
    return str((pod.metadata.annotations or {}).get(FAIL_STRATEGY, "")).strip() == "fail-fast"


class PodController:
    """Creates and deletes container groups for the node's pods."""

    def __init__(self, api: client.ApiClient, settings: Settings,
                 provider: PodLifecycleHandler, recorder: KubeEventRecorder,
                 metrics: Metrics, backoff: Backoff | None = None) -> None:
        self._core = client.CoreV1Api(api)
        self.settings = settings
        self.provider = provider
        self.recorder = recorder
        self.metrics = metrics
        self.tracked: dict[str, Tracked] = {}
        self._gone: dict[str, Any] = {}
        self.informer = pod_informer(api, settings.node_name, self._changed, self._deleted)
        self.queue = WorkQueue(self.handle, _should_retry, self._give_up,
                               concurrency=settings.pod_workers,
                               max_retries=settings.max_retries,
                               backoff=backoff or Backoff())
        self.ready = asyncio.Event()  # set once start-up reconciliation is done
        self.on_created: list[Any] = []  # callables poked after a create (status sync)
        # Creates and deletes of groups pass it: a deposed leader makes none (kube/fence.py).
        self.fence = Fence()
        # Start-up adoption of groups an earlier version tagged with the old default cluster
        # name (set by the runner when the name was derived, see cloud/groups/legacy.py): given
        # this node's pods (UID -> namespace, name), returns the UIDs whose groups it adopted.
        self.adopt_legacy: LegacyAdopter | None = None

    # ---- informer callbacks: only enqueue, work happens in the queue -----------------------

    def _changed(self, key: str) -> None:
        if self.ready.is_set():
            self.queue.enqueue(key)

    def _deleted(self, key: str, pod: Any) -> None:
        self._gone[key] = pod
        if self.ready.is_set():
            self.queue.enqueue(key)

    def uid_of(self, namespace: str, name: str) -> str | None:
        """The UID of this node's pod ``namespace/name`` (None: no such pod on this node)."""
        pod = self.informer.cache.get(f"{namespace}/{name}")
        return str(pod.metadata.uid) if pod is not None and pod.metadata.uid else None

    def ended(self, namespace: str, name: str) -> bool:
        """Whether this node's pod ``namespace/name`` has reached Succeeded or Failed."""
        pod = self.informer.cache.get(f"{namespace}/{name}")
        return pod is not None and pod.status is not None and pod.status.phase in TERMINAL

    def track(self, pod: Any) -> Tracked:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        t = self.tracked.get(key)
        if t is None or t.uid != pod.metadata.uid:
            t = Tracked(uid=pod.metadata.uid, first_seen=time.monotonic())
            self.tracked[key] = t
        return t

    def adopt(self, pod: Any) -> None:
        """``pod``'s group already exists (made before a restart): follow it, never create it.
        A provider that keeps per-pod state (ECI events to copy) is told to follow it too."""
        self.track(pod).created = True
        follow = getattr(self.provider, "track", None)
        if follow is not None:
            follow(pod)

    def requeue(self, key: str) -> None:
        """Look at ``key`` again, e.g. when an image cache it waits for changed."""
        t = self.tracked.get(key)
        if t is not None:
            t.failed = False
        self.queue.enqueue(key)

    def requeue_denied(self) -> None:
        """The profile changed: look again, once, at the pods its policy refused."""
        for key, t in list(self.tracked.items()):
            if t.denied and t.failed:
                t.failed = t.denied = False
                self.queue.enqueue(key)

    # ---- the work --------------------------------------------------------------------------

    async def handle(self, key: str) -> float | None:
        pod = self.informer.cache.get(key)
        gone = self._gone.pop(key, None)
        if gone is not None and (pod is None or pod.metadata.uid != gone.metadata.uid):
            await self._cleanup(key, gone)
        if pod is None:
            self.queue.forget(key)
            return None
        t = self.track(pod)
        if t.created:
            # The provider's view of the pod follows the informer's newest object, so the
            # version it saw at create time is not kept beside it (a second copy of every pod).
            follow = getattr(self.provider, "track", None)
            if follow is not None:
                follow(pod)
        if pod.metadata.deletion_timestamp is not None:
            return await self._delete(key, pod, t)
        if (pod.status and pod.status.phase) in TERMINAL:
            return None
        if t.created and t.images != images_of(pod):
            # An image changed (kubectl set image, an in-place update): the provider applies
            # what ECI can in place and says what it cannot (events), never silently nothing.
            try:
                await self.provider.update_pod(pod)
            except EciError as err:
                # Never ProviderFailed: the pod runs on, with its old image.
                await self.recorder.record(pod, "Warning", "ImageUpdateFailed",
                                           redact(str(err)))
                if not isinstance(err, Permanent):
                    return RETRY_UPDATE
            t.images = images_of(pod)
        if t.created or t.failed or t.refused:
            return None
        reason = unsupported_reason(pod)
        if reason is not None:
            t.refused = True
            pods_logger.warning("refusing pod %s: %s", key, reason, extra={"pod": key})
            await self.recorder.record(pod, "Warning", "UnsupportedPod", reason)
            return None
        started = time.monotonic()
        self.fence.check(f"the container group of {key}")
        try:
            await self.provider.create_pod(pod)
        except EciError as err:
            # Our own throttling and a Secret not there yet are not ECI failing the create.
            if fail_fast(pod) and not isinstance(err, (Throttled, MissingDependency)):
                await self._give_up(key, err, 1)
                return None
            if isinstance(err, OutOfStock):
                await self.recorder.record(pod, "Warning", "OutOfStock", f"{redact(str(err))}; "
                                           "the pod stays Pending and is retried "
                                           f"({FAIL_STRATEGY}: fail-back)")
            raise
        t.created = True
        t.images = images_of(pod)
        # Observed by the status sync, once the informer shows the cache the provider chose
        # (recorded on the pod just before the create): see cache_result().
        t.create_seconds = time.monotonic() - t.first_seen
        pods_logger.info("created container group for %s in %.2fs", key,
                         time.monotonic() - started, extra={"pod": key})
        for poke in self.on_created:
            poke()
        return None

    async def _cleanup(self, key: str, pod: Any) -> None:
        """The pod object is gone (or replaced): make sure its group is gone too."""
        t = self.tracked.get(key)
        if t is not None and t.uid == pod.metadata.uid:
            del self.tracked[key]
        self.fence.check(f"a delete of the container group of {key}")
        await self.provider.delete_pod(pod)
        pods_logger.info("deleted container group of removed pod %s", key, extra={"pod": key})

    async def _delete(self, key: str, pod: Any, t: Tracked) -> float | None:
        """Graceful delete: the group first, then the object (forced, UID-checked)."""
        self.fence.check(f"a delete of the container group of {key}")
        await self.provider.delete_pod(pod)
        if t.created:
            deadline = pod.metadata.deletion_timestamp
            remaining = (deadline - dt.datetime.now(dt.UTC)).total_seconds() if deadline else 0
            status = await self.provider.get_pod_status(pod.metadata.namespace,
                                                        pod.metadata.name)
            phase = getattr(status, "phase", None) if status is not None else None
            if status is not None and phase not in TERMINAL and remaining > 0:
                return min(1.0, remaining)  # still stopping within its grace period
        await self.force_delete(pod)
        self.tracked.pop(key, None)
        return None

    async def force_delete(self, pod: Any) -> None:
        body: Any = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.metadata.uid))
        try:
            await self._core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                                   body=body)
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    async def _give_up(self, key: str, error: BaseException, attempts: int) -> None:
        pod = self.informer.cache.get(key)
        if pod is None:
            return
        if isinstance(error, Fenced):
            # Not a failure of the pod: another replica leads and will work it.
            pods_logger.warning("not working pod %s: %s", key, error, extra={"pod": key})
            return
        t = self.track(pod)
        message = redact(str(error))
        permanent = isinstance(error, Permanent)
        pods_logger.error("giving up on pod %s after %d attempt(s): %s", key, attempts, message,
                          extra={"pod": key})
        if pod.metadata.deletion_timestamp is not None:
            # ECI would not delete the group; the pod object must not stay forever either.
            await self.recorder.record(pod, "Warning", "ProviderDeleteFailed", message)
            self.queue.enqueue_after(key, RETRY_AFTER_GIVE_UP)
            return
        t.failed = True
        reason = PROVIDER_FAILED
        if getattr(error, "code", None) == POLICY_DENIED:
            # The provider recorded the PolicyDenied event; the pod stays Pending (a Failed pod
            # would only be replaced by its controller, and denied again) until the profile
            # changes (requeue_denied).
            reason, t.denied = POLICY_DENIED, True
        else:
            await self.recorder.record(pod, "Warning", PROVIDER_FAILED, message)
        failed = fail_on_create_err(pod)
        status: dict[str, Any] = {"phase": "Failed" if failed else "Pending",
                                  "reason": reason, "message": message}
        await self.patch_status(pod, status)
        # Transient causes (ECI down, quota) pass: look again later. Our own bugs and refusals
        # that no retry can fix are reported once, not every minute.
        if not permanent and not failed and _should_retry(error):
            t.failed = False
            self.queue.enqueue_after(key, RETRY_AFTER_GIVE_UP)

    async def patch_status(self, pod: Any, status: dict[str, Any],
                           annotations: Mapping[str, str] | None = None) -> bool:
        """Strategic-merge ``status`` (and ``annotations``, in the same write) into the pod;
        False when the pod is gone."""
        meta: dict[str, Any] = {"uid": pod.metadata.uid}
        if annotations:
            meta["annotations"] = dict(annotations)
        body: Any = {"metadata": meta, "status": status}
        try:
            # The answer (the whole pod) is not read: the informer brings it.
            await unanswered(self._core.patch_namespaced_pod_status, pod.metadata.name,
                             pod.metadata.namespace, body)
        except ApiException as e:
            if e.status in (404, 409, 422):  # gone, or replaced by a pod with another UID
                return False
            raise
        return True

    async def run(self) -> None:
        """Feed the queue from the informer; runs until cancelled."""
        try:
            await self.informer.run()
        finally:
            await self.queue.close()

    def start_work(self) -> None:
        """After reconciliation: let informer changes reach the queue, and work every pod."""
        self.ready.set()
        for key in list(self.informer.cache):
            self.queue.enqueue(key)
        for key in list(self._gone):
            self.queue.enqueue(key)


def _should_retry(error: BaseException) -> bool:
    if isinstance(error, (Permanent, Fenced)):
        return False
    if isinstance(error, ApiException):
        return error.status is None or error.status >= 500 or error.status in (409, 429)
    # Throttled/Retryable ECI errors and transport failures are worth another try; a bug in our
    # own code is not, and retrying it would only hide it.
    return not isinstance(error, (TypeError, AttributeError, KeyError, ValueError,
                                  NotImplementedError))
