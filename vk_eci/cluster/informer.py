"""The node's view of its pods: list, then watch ``spec.nodeName=<node>``, kept in a cache.

A watch that ends (server timeout, dropped connection) resumes from the last resourceVersion
it saw; a watch answered with 410 Gone (that version was compacted away) relists, and pods
missing from the new list are reported deleted, so no deletion is lost across the gap.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.log import pods_logger

WATCH_SECONDS = 290  # well below the API server's request timeout, so the server ends it


def pod_key(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


class PodInformer:
    """Keeps ``cache`` (key → V1Pod) in step with the API server; calls back on change."""

    def __init__(self, api: client.ApiClient, node_name: str,
                 on_change: Callable[[str], None],
                 on_delete: Callable[[str, Any], None]) -> None:
        self._core = client.CoreV1Api(api)
        self.selector = f"spec.nodeName={node_name}"
        self.on_change = on_change
        self.on_delete = on_delete
        self.cache: dict[str, Any] = {}
        self.synced = asyncio.Event()
        self.relists = 0
        self.resource_version = ""

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.relist()
                await self.watch()
                delay = 0.5
            except (ApiException, aiohttp.ClientError, TimeoutError) as e:
                pods_logger.warning("pod list for %s failed: %s; retrying in %.1fs",
                                    self.selector, _why(e), delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 30.0)

    async def relist(self) -> None:
        listing = await self._core.list_pod_for_all_namespaces(field_selector=self.selector)
        self.relists += 1
        fresh = {pod_key(p): p for p in listing.items}
        for key in [k for k in self.cache if k not in fresh]:
            self.on_delete(key, self.cache.pop(key))
        for key, pod in fresh.items():
            old = self.cache.get(key)
            if old is not None and old.metadata.uid != pod.metadata.uid:
                self.on_delete(key, old)
            self.cache[key] = pod
            if old is None or old.metadata.resource_version != pod.metadata.resource_version:
                self.on_change(key)
        self.resource_version = listing.metadata.resource_version
        self.synced.set()

    async def watch(self) -> None:
        """Watch from ``resource_version`` until 410 Gone (then return to relist)."""
        failures = 0
        while True:
            w = watch.Watch()
            try:
                stream = w.stream(self._core.list_pod_for_all_namespaces,
                                  field_selector=self.selector,
                                  resource_version=self.resource_version,
                                  allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS,
                                  _request_timeout=WATCH_SECONDS + 30)
                async for event in stream:
                    failures = 0
                    self._apply(event["type"], event["object"])
                    self.resource_version = w.resource_version or self.resource_version
            except ApiException as e:
                if e.status == 410:
                    pods_logger.info("pod watch expired at %s; relisting", self.resource_version)
                    return
                failures += 1
                if failures > 5:
                    raise
                pods_logger.warning("pod watch failed: %s; resuming", _why(e))
                await asyncio.sleep(min(0.2 * 2**failures, 10.0))
            except (aiohttp.ClientError, TimeoutError) as e:
                failures += 1
                if failures > 5:
                    raise
                pods_logger.warning("pod watch dropped: %s; resuming from %s", _why(e),
                                    self.resource_version)
                await asyncio.sleep(min(0.2 * 2**failures, 10.0))
            finally:
                await w.close()

    def _apply(self, kind: str, pod: Any) -> None:
        if kind == "BOOKMARK" or not hasattr(pod, "metadata"):
            return
        key = pod_key(pod)
        if kind == "DELETED":
            self.cache.pop(key, None)
            self.on_delete(key, pod)
            return
        old = self.cache.get(key)
        if old is not None and old.metadata.uid != pod.metadata.uid:
            self.on_delete(key, old)
        self.cache[key] = pod
        self.on_change(key)


def _why(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"
