"""The node heartbeat: a Lease in ``kube-node-lease``, renewed only while ECI answers.

Each tick calls ECI's cheap health call (``DescribeRegions``) with a deadline. While it answers,
the Lease's ``renewTime`` is moved on; when it does not, the Lease is left to expire, so the real
node-lifecycle controller marks the Node unreachable, and after ``unhealthy_after`` failures in a
row we also set Ready=False ourselves with the reason, so the user sees why at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.node.controller import Health, NodeController
from vk_eci.cluster.node.standby import HOLDER_ANNOTATION
from vk_eci.config import Settings
from vk_eci.log import node_logger, redact
from vk_eci.metrics import Metrics

LEASE_NAMESPACE = "kube-node-lease"
HealthCheck = Callable[[], Awaitable[object]]


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_lease(node_name: str, node_uid: str, duration: float, at: str,
                holder: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": node_name, "namespace": LEASE_NAMESPACE}
    if holder:
        # holderIdentity stays the node name, as the kubelet writes it; which process of ours
        # renews it is told here (see vk_eci.cluster.node.standby).
        meta["annotations"] = {HOLDER_ANNOTATION: holder}
    if node_uid:
        # Owned by the Node, as the kubelet does, so that deleting the Node removes the Lease.
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                    "uid": node_uid}]
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
            "spec": {"holderIdentity": node_name, "leaseDurationSeconds": int(duration),
                     "renewTime": at}}


class LeaseController:
    """Renews the node Lease every ``lease_renew_interval`` while ``health_check`` succeeds."""

    def __init__(self, api: client.ApiClient, settings: Settings, node: NodeController,
                 health_check: HealthCheck, metrics: Metrics | None = None,
                 unhealthy_after: int = 2) -> None:
        self._coord = client.CoordinationV1Api(api)
        self.settings = settings
        self.node = node
        self.health_check = health_check
        self.metrics = metrics
        self.unhealthy_after = unhealthy_after
        self.failures = 0
        self.renewals = 0
        self._exists = False

    async def check(self) -> Health:
        try:
            async with asyncio.timeout(self.settings.health_timeout):
                await self.health_check()
        except TimeoutError:
            return Health(False, f"health call DescribeRegions got no answer in "
                                 f"{self.settings.health_timeout:g}s")
        except Exception as e:
            return Health(False, f"health call DescribeRegions failed: {redact(str(e))}")
        return Health(True)

    async def tick(self) -> None:
        health = await self.check()
        if health.ok:
            self.failures = 0
            await self.renew()
            await self.node.set_health(health)
        else:
            self.failures += 1
            node_logger.warning("not renewing lease of %s: %s", self.node.name, health.message)
            if self.failures >= self.unhealthy_after:
                await self.node.set_health(health)
        if self.metrics is not None:
            self.metrics.node_ready.set(1 if self.node.health.ok else 0)

    async def renew(self) -> None:
        name = self.node.name
        body: Any = build_lease(name, self.node.uid, self.settings.lease_duration, micro_now(),
                                self.settings.identity)
        if not self._exists:
            try:
                await self._coord.create_namespaced_lease(LEASE_NAMESPACE, body)
                self._exists = True
                self.renewals += 1
                return
            except ApiException as e:
                if e.status != 409:
                    raise
                self._exists = True
        patch: Any = {"spec": body["spec"], "metadata": {
            k: body["metadata"][k] for k in ("ownerReferences", "annotations")
            if k in body["metadata"]}}
        try:
            await self._coord.patch_namespaced_lease(name, LEASE_NAMESPACE, patch)
        except ApiException as e:
            if e.status == 404:
                self._exists = False  # someone deleted it: recreate on the next tick
            raise
        self.renewals += 1

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except ApiException as e:
                node_logger.warning("lease of %s: API error %s %s", self.node.name, e.status,
                                    e.reason)
            except (aiohttp.ClientError, TimeoutError) as e:
                node_logger.warning("lease of %s: API server unreachable: %s", self.node.name, e)
            await asyncio.sleep(self.settings.lease_renew_interval)
