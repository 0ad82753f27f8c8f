"""The one list+watch mechanism of the node: every watcher of Kubernetes objects is an Informer.

In the spirit of client-go's reflector + store + shared informer: list, then watch from the
listing's resourceVersion, keeping a store (key → object) and telling handlers what changed.

- A watch that ends (server timeout, dropped connection) resumes from the last resourceVersion
  it saw, bookmarks included, without listing again.
- A watch answered with 410 Gone (that version was compacted away) lists again; objects missing
  from the new listing are reported deleted, so no deletion is lost across the gap.
- Failures back off exponentially with jitter; ``synced`` is set once the first listing is in.

Objects are either typed models (``V1Pod``) or plain dicts (custom objects); the store holds
them as the API client returns them. This is the only module that uses ``watch.Watch``
(``tests/unit/test_informer_single.py``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.kube.decode import decode
from vk_eci.log import pods_logger

WATCH_SECONDS = 290  # well below the API server's request timeout, so the server ends it
WATCH_FAILURES = 5   # consecutive failed watches before listing again

OnChange = Callable[[str], None]
OnDelete = Callable[[str, Any], None]


@dataclass(frozen=True)
class Handler:
    """What an informer calls: ``on_change(key)`` after the store holds the new object,
    ``on_delete(key, last_object)`` after it dropped it."""

    on_change: OnChange
    on_delete: OnDelete


def meta(obj: Any, field: str) -> Any:
    """``metadata.<field>`` (camelCase) of a typed model or a dict."""
    if isinstance(obj, Mapping):
        return (obj.get("metadata") or {}).get(field)
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in field)
    return getattr(obj.metadata, snake, None)


def object_key(obj: Any) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object. Interned: the node keys
    a pod so in several maps (the cache, the controller, the status sync, the provider), and
    one string serves them all instead of a copy each (tens of bytes a pod and map)."""
    ns = meta(obj, "namespace")
    return sys.intern(f"{ns}/{meta(obj, 'name')}" if ns else str(meta(obj, "name")))


def newer(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace ``old`` in a store: another object (UID), or not older.
    An answer to our own write can reach the store before the watch event that precedes it."""
    if meta(old, "uid") != meta(new, "uid"):
        return True
    return _rv(new) >= _rv(old)


def _rv(obj: Any) -> int:
    try:
        return int(meta(obj, "resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class Informer:
    """Keeps ``cache`` (key → object) in step with the API server; calls handlers on change.

    ``lister`` is a kubernetes_asyncio list call (``list_pod_for_all_namespaces``,
    ``list_cluster_custom_object``...) with ``args``/``kwargs`` selecting what to watch.
    """

    def __init__(self, name: str, lister: Callable[..., Awaitable[Any]], *args: Any,
                 logger: logging.Logger, watch_seconds: int = WATCH_SECONDS,
                 backoff_cap: float = 30.0, hint: Callable[[ApiException], str] | None = None,
                 **kwargs: Any) -> None:
        self.name = name
        self._lister = lister
        self._args = args
        self._kwargs = kwargs
        self._log = logger
        self._watch_seconds = watch_seconds
        self._backoff_cap = backoff_cap
        self._hint = hint
        self.handlers: list[Handler] = []
        self.cache: dict[str, Any] = {}
        self.synced = asyncio.Event()
        self.resource_version = ""  # where the next watch starts; empty: list first
        self.relists = 0
        self.expired = 0  # watches answered 410 Gone

    def add_handler(self, on_change: OnChange, on_delete: OnDelete) -> None:
        self.handlers.append(Handler(on_change, on_delete))

    async def run(self) -> None:
        """List and watch until cancelled. Run again after a cancel, it resumes the watch."""
        delay = 0.5
        while True:
            try:
                if not self.resource_version:
                    await self.relist()
                await self.watch()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.resource_version = ""
                self._log.warning("%s: list/watch failed: %s%s; listing again in %.1fs",
                                  self.name, _why(e), self._hint_for(e), delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._backoff_cap)

    async def relist(self) -> None:
        listing = await self._lister(*self._args, **self._kwargs)
        items, version = _listing(listing)
        self.relists += 1
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self.cache if k not in fresh]:
            self._deleted(key, self.cache.pop(key))
        for key, obj in fresh.items():
            old = self.cache.get(key)
            if old is not None and meta(old, "uid") != meta(obj, "uid"):
                self._deleted(key, old)
                old = None
            self.cache[key] = _lean(obj)
            if old is None or meta(old, "resourceVersion") != meta(obj, "resourceVersion"):
                self._changed(key)
        self.resource_version = version
        self.synced.set()

    async def watch(self) -> None:
        """Watch from ``resource_version`` until 410 Gone (then clear it, so ``run`` relists)."""
        failures = 0
        while True:
            w = _Watch()
            try:
                stream = w.stream(self._lister, *self._args, **self._kwargs,
                                  resource_version=self.resource_version,
                                  allow_watch_bookmarks=True,
                                  timeout_seconds=self._watch_seconds,
                                  _request_timeout=self._watch_seconds + 30)
                async for event in stream:
                    failures = 0
                    self.apply(event["type"], event["object"])
                    self.resource_version = w.resource_version or self.resource_version
            except ApiException as e:
                if e.status == 410:
                    self.expired += 1
                    self._log.info("%s: watch expired at %s; listing again", self.name,
                                   self.resource_version)
                    self.resource_version = ""
                    return
                failures += 1
                if failures > WATCH_FAILURES:
                    raise
                self._log.warning("%s: watch failed: %s%s; resuming", self.name, _why(e),
                                  self._hint_for(e))
                await asyncio.sleep(min(0.2 * 2**failures, 10.0) * random.uniform(0.5, 1.0))
            except (OSError, TimeoutError, aiohttp.ClientError) as e:
                failures += 1
                if failures > WATCH_FAILURES:
                    raise
                self._log.warning("%s: watch dropped: %s; resuming from %s", self.name,
                                  _why(e), self.resource_version)
                await asyncio.sleep(min(0.2 * 2**failures, 10.0) * random.uniform(0.5, 1.0))
            finally:
                await w.close()

    def apply(self, kind: str, obj: Any) -> None:
        """One watch event into the store, then to the handlers."""
        if kind == "BOOKMARK" or (not isinstance(obj, Mapping) and not hasattr(obj, "metadata")):
            return
        key = object_key(obj)
        if kind == "DELETED":
            self.cache.pop(key, None)
            self._deleted(key, obj)
            return
        old = self.cache.get(key)
        if old is not None and not newer(old, obj):
            return
        if old is not None and meta(old, "uid") != meta(obj, "uid"):
            self._deleted(key, old)
        self.cache[key] = _lean(obj)
        self._changed(key)

    def remember(self, obj: Any) -> None:
        """Our own write's answer into the store (no handler called): never rolled back by an
        older watch event."""
        key = object_key(obj)
        old = self.cache.get(key)
        if old is None or newer(old, obj):
            self.cache[key] = _lean(obj)

    def _changed(self, key: str) -> None:
        for h in self.handlers:
            h.on_change(key)

    def _deleted(self, key: str, obj: Any) -> None:
        for h in self.handlers:
            h.on_delete(key, obj)

    def _hint_for(self, e: BaseException) -> str:
        if self._hint is not None and isinstance(e, ApiException):
            return self._hint(e)
        return ""


class _Watch(watch.Watch):  # type: ignore[misc]
    """The client's watch, but each event's object parsed once: the client's own turns the
    parsed object back into JSON text and parses that again to make the model."""

    def unmarshal_event(self, data: str | bytes, response_type: str | None) -> Any:
        event = super().unmarshal_event(data, None)
        if response_type and isinstance(event, dict) and \
                str(event.get("type", "")).lower() != "bookmark":
            event["object"] = decode(event["raw_object"], response_type)
        return event


def pod_informer(api: client.ApiClient, node_name: str, on_change: OnChange,
                 on_delete: OnDelete) -> Informer:
    """The node's pods (``spec.nodeName=<node>``)."""
    selector = f"spec.nodeName={node_name}"
    informer = Informer(f"pods of {node_name}",
                        client.CoreV1Api(api).list_pod_for_all_namespaces,
                        logger=pods_logger, field_selector=selector)
    informer.add_handler(on_change, on_delete)
    return informer


def _lean(obj: Any) -> Any:
    """``obj`` without its ``managedFields`` (as client-go's informers drop them): nothing in
    the node reads them, and each writer's field set kept per pod was the largest single item
    of a pod's cost at rest."""
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("managedFields", None)
    elif getattr(getattr(obj, "metadata", None), "managed_fields", None) is not None:
        obj.metadata.managed_fields = None
    return obj


def _listing(listing: Any) -> tuple[list[Any], str]:
    if isinstance(listing, Mapping):
        return list(listing.get("items") or []), str(listing["metadata"]["resourceVersion"])
    return list(listing.items), str(listing.metadata.resource_version)


def _why(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"{e.status} {e.reason}"
    return f"{type(e).__name__}: {e}"
