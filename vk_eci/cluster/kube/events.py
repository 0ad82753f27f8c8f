"""Kubernetes Events on pods (and the profile's ConfigMap): the cluster side's
:class:`vk_eci.provider.EventRecorder`.

Core v1 Events (what ``kubectl describe pod`` and ``kubectl get events`` show). A repeated
event (same pod, type, reason and message) is counted up on one object rather than written
again, as client-go's recorder aggregates. Event names are derived from their content, so a
restarted node counts up the same object instead of creating a twin. :meth:`record` never
raises: an event is a message to the user, not a reason to fail the pod's work.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.kube.decode import unanswered
from vk_eci.log import pods_logger, redact

COMPONENT = "virtual-kubelet"
MAX_MESSAGE = 1024
_CACHE_SIZE = 4096


def meta_of(pod: Any) -> tuple[str, str, str]:
    """(namespace, name, uid) of a V1Pod model or a pod dict."""
    if isinstance(pod, dict):
        m = pod.get("metadata") or {}
        return m.get("namespace", ""), m.get("name", ""), m.get("uid", "")
    return pod.metadata.namespace, pod.metadata.name, pod.metadata.uid


def _time(at: dt.datetime | None = None) -> str:
    return (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_name(pod_name: str, uid: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join((uid, *parts)).encode()).hexdigest()[:16]
    return f"{pod_name[:200]}.{digest}"


class KubeEventRecorder:
    """Records events on pods (and other namespaced core objects) through the core v1 Events
    API."""

    def __init__(self, api: client.ApiClient, node_name: str) -> None:
        self._core = client.CoreV1Api(api)
        self.node_name = node_name
        self._counts: OrderedDict[str, int] = OrderedDict()

    def _body(self, pod: Any, name: str, type: str, reason: str, message: str, count: int,
              first: str, last: str, kind: str = "Pod") -> dict[str, Any]:
        namespace, pod_name, uid = meta_of(pod)
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": kind, "namespace": namespace,
                               "name": pod_name, "uid": uid},
            "type": type, "reason": reason, "message": redact(message)[:MAX_MESSAGE],
            "count": count, "firstTimestamp": first, "lastTimestamp": last,
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT, "reportingInstance": self.node_name,
        }

    async def record(self, pod: Any, type: str, reason: str, message: str,
                     kind: str = "Pod") -> None:
        """Emit one event on ``pod`` (or another core v1 object of a namespace, such as the
        profile's ConfigMap, named by ``kind``), or count up the same one; never raises."""
        namespace, pod_name, uid = meta_of(pod)
        name = event_name(pod_name, uid, type, reason, message)
        try:
            count = self._counts.get(name)
            if count is None:
                now = _time()
                try:
                    body: Any = self._body(pod, name, type, reason, message, 1, now, now,
                                           kind)
                    await unanswered(self._core.create_namespaced_event, namespace, body)
                    self._remember(name, 1)
                    return
                except ApiException as e:
                    if e.status != 409:
                        raise
                    existing = await self._core.read_namespaced_event(name, namespace)
                    count = int(existing.count or 1)
            patch: Any = {"count": count + 1, "lastTimestamp": _time()}
            await unanswered(self._core.patch_namespaced_event, name, namespace, patch)
            self._remember(name, count + 1)
        except (ApiException, aiohttp.ClientError, TimeoutError) as e:
            pods_logger.warning("cannot record event %s on %s/%s: %s", reason, namespace,
                                pod_name, _why(e), extra={"pod": f"{namespace}/{pod_name}"})

    async def record_copy(self, pod: Any, type: str, reason: str, message: str, key: str,
                          count: int = 1, first: dt.datetime | None = None,
                          last: dt.datetime | None = None) -> bool:
        """Copy an event from elsewhere (ECI) exactly once per ``key`` and ``count``.

        Returns False when it could not be written (the caller tries again later).
        """
        namespace, pod_name, uid = meta_of(pod)
        name = event_name(pod_name, uid, "copy", key)
        if self._counts.get(name, 0) >= count:
            return True
        body: Any = self._body(pod, name, type, reason, message, count, _time(first),
                               _time(last or first))
        try:
            try:
                await unanswered(self._core.create_namespaced_event, namespace, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                patch: Any = {"count": count, "lastTimestamp": body["lastTimestamp"],
                              "message": body["message"]}
                await unanswered(self._core.patch_namespaced_event, name, namespace, patch)
        except (ApiException, aiohttp.ClientError, TimeoutError) as e:
            pods_logger.warning("cannot copy event %s on %s/%s: %s", reason, namespace,
                                pod_name, _why(e), extra={"pod": f"{namespace}/{pod_name}"})
            return False
        self._remember(name, count)
        return True

    def _remember(self, name: str, count: int) -> None:
        self._counts[name] = count
        self._counts.move_to_end(name)
        while len(self._counts) > _CACHE_SIZE:
            self._counts.popitem(last=False)


def _why(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"
