"""Kubernetes Events on ImageCache objects (``kubectl describe ic NAME`` shows them).

ImageCache is cluster-scoped, so, as for Nodes, its events live in the ``default`` namespace with
an ``involvedObject`` that has no namespace. A repeated (reason, message) on the same object
counts up the existing Event instead of writing a new one. Recording never raises: an event
that cannot be written is logged and dropped, the reconcile goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from vk_eci.cluster.imagecaches.spec import API_VERSION, KIND
from vk_eci.log import caches_logger, redact

EVENT_NAMESPACE = "default"
COMPONENT = "vk-eci-imagecache-controller"


class ObjectEventRecorder(Protocol):
    """Records an event on a Kubernetes object given as its raw JSON (a dict)."""

    async def record(self, obj: Mapping[str, Any], type: str, reason: str,
                     message: str) -> None: ...


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImageCacheEvents:
    """Writes core/v1 Events for ImageCache objects (or another cluster-scoped object whose
    raw JSON says its ``apiVersion`` and ``kind``, such as the Node)."""

    def __init__(self, api_client: Any, host: str = "", component: str = COMPONENT) -> None:
        self._api: Any = client.CoreV1Api(api_client)
        self._host = host
        self._component = component
        self._seen: dict[str, int] = {}  # event name -> count written

    async def record(self, obj: Mapping[str, Any], type: str, reason: str,
                     message: str) -> None:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        name = str(meta.get("name", ""))
        digest = hashlib.sha256(f"{uid}/{reason}/{message}".encode()).hexdigest()[:12]
        event_name = f"{name[:200]}.{digest}"
        now = _now()
        count = self._seen.get(event_name, 0) + 1
        try:
            if count > 1:
                try:
                    await self._api.patch_namespaced_event(
                        event_name, EVENT_NAMESPACE, {"count": count, "lastTimestamp": now})
                    self._seen[event_name] = count
                    return
                except ApiException as e:
                    if e.status != 404:
                        raise
                    count = 1
            body = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": event_name, "namespace": EVENT_NAMESPACE},
                "involvedObject": {"apiVersion": obj.get("apiVersion", API_VERSION),
                                   "kind": obj.get("kind", KIND), "name": name,
                                   "uid": uid,
                                   "resourceVersion": str(meta.get("resourceVersion", ""))},
                "reason": reason, "message": redact(message)[:1024], "type": type,
                "source": {"component": self._component,
                           **({"host": self._host} if self._host else {})},
                "reportingComponent": self._component,
                "reportingInstance": self._host or self._component,
                "firstTimestamp": now, "lastTimestamp": now, "count": count,
            }
            try:
                await self._api.create_namespaced_event(EVENT_NAMESPACE, body)
            except ApiException as e:
                if e.status != 409:
                    raise
                # Written by an earlier leader: count it up from what is stored.
                stored = await self._api.read_namespaced_event(event_name, EVENT_NAMESPACE)
                count = int(stored.count or 1) + 1
                await self._api.patch_namespaced_event(
                    event_name, EVENT_NAMESPACE, {"count": count, "lastTimestamp": now})
            if len(self._seen) > 10_000:  # bound memory; a forgotten event is simply re-created
                self._seen.clear()
            self._seen[event_name] = count
        except Exception as e:  # an event is never worth failing a reconcile for
            caches_logger.warning("event %s on %s %s not recorded: %s", reason,
                                  obj.get("kind", KIND), name, e, extra={"imagecache": name})
