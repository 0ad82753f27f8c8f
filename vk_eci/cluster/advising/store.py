"""The cache advisor's record of demand in a ConfigMap (format: :mod:`vk_eci.advisor.persist`).

Read once when the node starts leading (and merged into what was observed meanwhile); written
by the leader only (ConfigMap writes pass the node's fence, :mod:`vk_eci.cluster.kube.fence`), at
most every ``save_interval`` seconds and only when the record changed, plus once when the
advisor stops. The calls are exactly those the chart grants: ``get`` and ``patch`` of that one
ConfigMap by name, ``create`` in its namespace the first time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.advisor.persist import KEY, StateError, decode, encode
from vk_eci.advisor.record import DemandRecord
from vk_eci.log import caches_logger

SELECTOR = "app.kubernetes.io/component=imagecache-advisor"

MANAGED_BY = {"app.kubernetes.io/managed-by": "vk-eci", "app.kubernetes.io/component":
              "imagecache-advisor"}


class DemandStore:
    """Loads and saves one node's :class:`DemandRecord` in ``namespace/name``."""

    def __init__(self, api: Any, namespace: str, name: str, *, save_interval: float = 60.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._core = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name
        self.save_interval = save_interval
        self.clock = clock
        self.monotonic = monotonic
        self._saved_changes: int | None = None
        self._saved_at = -float("inf")
        self._exists: bool | None = None

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    async def load(self, record: DemandRecord) -> str | None:
        """Merge the stored record into ``record``. Returns why the stored one was unusable
        (it is then overwritten by the next save), None when it was read or absent."""
        try:
            cm = await self._core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            self._exists = False
            caches_logger.info("advisor: no %s yet; demand starts empty", self.where)
            return None
        self._exists = True
        text = (cm.data or {}).get(KEY)
        if text is None:
            return f"{self.where} has no key {KEY}"
        try:
            stored = decode(text, window_hours=record.window_hours, max_sets=record.max_sets,
                            max_workloads=record.max_workloads)
        except StateError as e:
            return f"{self.where} key {KEY} is not a demand record: {e}"
        record.merge(stored)
        caches_logger.info("advisor: loaded %d image sets from %s", len(stored.sets),
                           self.where)
        return None

    def due(self, record: DemandRecord) -> bool:
        return (record.changes != self._saved_changes
                and self.monotonic() - self._saved_at >= self.save_interval)

    async def save(self, record: DemandRecord, *, force: bool = False) -> bool:
        """Write the record when it changed and the interval passed (or ``force``)."""
        if record.changes == self._saved_changes or not (force or self.due(record)):
            return False
        changes = record.changes
        # Encoding a full record takes a fraction of a second: in a thread, on a copy.
        text = await asyncio.to_thread(encode, record.copy(), self.clock())
        body = {"metadata": {"labels": MANAGED_BY}, "data": {KEY: text}}
        if self._exists is not False:
            try:
                await self._core.patch_namespaced_config_map(self.name, self.namespace, body)
                self._done(changes)
                return True
            except ApiException as e:
                if e.status != 404:
                    raise
        try:
            await self._core.create_namespaced_config_map(self.namespace, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=self.name, labels=MANAGED_BY),
                data={KEY: text}))
        except ApiException as e:
            if e.status != 409:
                raise
            # Made meanwhile (a previous leader's first save): write over it.
            await self._core.patch_namespaced_config_map(self.name, self.namespace, body)
        self._exists = True
        self._done(changes)
        return True

    def _done(self, changes: int) -> None:
        self._saved_changes = changes
        self._saved_at = self.monotonic()

    async def read_others(self, like: DemandRecord) -> list[DemandRecord]:
        """Every other node's record: the advisor ConfigMaps of this namespace but ours (ours
        is the live record), for the advisor that plans once for the cluster. Each is bounded
        as ``like`` (image sets, workloads per set); an unreadable one is skipped."""
        listing = await self._core.list_namespaced_config_map(self.namespace,
                                                              label_selector=SELECTOR)
        out: list[DemandRecord] = []
        for cm in listing.items:
            text = (cm.data or {}).get(KEY)
            if cm.metadata.name == self.name or text is None:
                continue
            try:
                out.append(await asyncio.to_thread(
                    decode, text, window_hours=like.window_hours, max_sets=like.max_sets,
                    max_workloads=like.max_workloads))
            except StateError as e:
                caches_logger.warning("advisor: ConfigMap %s/%s is not a demand record (%s); "
                                      "skipped", self.namespace, cm.metadata.name, e)
        return out
