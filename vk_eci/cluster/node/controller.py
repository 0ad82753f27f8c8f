"""The virtual Node: pure builders of its object and status, and the controller that keeps it.

Builders are pure (tests check them without a server). :class:`NodeController` registers the
Node or adopts an existing one (merging our labels and taint into what is there), and writes
status as a strategic-merge patch on ``nodes/status`` keyed by condition type, so conditions
that other controllers add survive our writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

import vk_eci
from vk_eci.cloud.placement.specs import GPU_RESOURCE
from vk_eci.config import Settings
from vk_eci.log import node_logger

TAINT_KEY = "virtual-kubelet.io/provider"
TAINT_VALUE = "alibabacloud"
NODE_TYPE_LABEL = "type"
NODE_TYPE = "virtual-kubelet"
READY_REASON = "KubeletReady"
UNREACHABLE_REASON = "EciUnreachable"
CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure",
                   "NetworkUnavailable")


@dataclass(frozen=True)
class Health:
    """What the node knows about ECI: reachable or not, and why not."""

    ok: bool
    message: str = ""
    reason: str = ""  # the Ready condition's reason when not ok (default: ECI unreachable)


# Until the first health call answers and the Lease exists, the node does not claim Ready (as the
# kubelet registers NotReady until its runtime answers): Ready must imply a live heartbeat.
STARTING = Health(ok=False, message="waiting for the first ECI health check",
                  reason="KubeletNotReady")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_ip(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    # A kubelet API bound to one specific address is reachable there and nowhere else: that
    # is the address to advertise (as `vk-eci run --kubelet-address <node-ip>` in a netns).
    bound = settings.kubelet_address
    specific = bound if bound and not ipaddress.ip_address(bound).is_unspecified else ""
    return settings.node_ip or env.get("POD_IP", "") or specific or "127.0.0.1"


def node_labels(settings: Settings) -> dict[str, str]:
    labels = {
        NODE_TYPE_LABEL: NODE_TYPE,
        "kubernetes.io/role": "agent",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": settings.architecture,
        "kubernetes.io/hostname": settings.node_name,
        "alibabacloud.com/eci": "true",
        "topology.kubernetes.io/region": settings.region,
        "failure-domain.beta.kubernetes.io/region": settings.region,
    }
    if settings.zone:
        labels["topology.kubernetes.io/zone"] = settings.zone
        labels["failure-domain.beta.kubernetes.io/zone"] = settings.zone
    labels.update(settings.labels)
    return labels


def node_taint() -> dict[str, str]:
    return {"key": TAINT_KEY, "value": TAINT_VALUE, "effect": "NoSchedule"}


def capacity(settings: Settings) -> dict[str, str]:
    cap = {"cpu": settings.cpu, "memory": settings.memory, "pods": str(settings.pods),
           "ephemeral-storage": settings.ephemeral_storage}
    if settings.gpu:
        cap[GPU_RESOURCE] = str(settings.gpu)
    return cap


def conditions(health: Health, at: str, previous: list[dict[str, Any]] | None = None,
               ) -> list[dict[str, Any]]:
    """Our five conditions; ``lastTransitionTime`` kept from ``previous`` when unchanged."""
    before = {c.get("type"): c for c in previous or []}
    wanted: list[tuple[str, str, str, str]] = [
        ("Ready", "True" if health.ok else "False",
         READY_REASON if health.ok else (health.reason or UNREACHABLE_REASON),
         "virtual node is ready: ECI answers" if health.ok
         else health.message if health.reason else f"ECI is unreachable: {health.message}"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "ECI has memory to spare"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "ECI has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "ECI has PIDs to spare"),
        ("NetworkUnavailable", "False", "RouteCreated", "ECI network is set up per pod"),
    ]
    out = []
    for kind, status, reason, message in wanted:
        old = before.get(kind) or {}
        transition = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": at, "lastTransitionTime": transition or at})
    return out


def node_status(settings: Settings, health: Health, kubelet_version: str, at: str,
                previous: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    cap = capacity(settings)
    return {
        "capacity": cap,
        "allocatable": dict(cap),
        "conditions": conditions(health, at, previous),
        "addresses": [{"type": "InternalIP", "address": node_ip(settings)},
                      {"type": "Hostname", "address": settings.node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.kubelet_port}},
        # The kubelet API speaks exec over WebSockets only (no SPDY): this lets the API server
        # (1.36+) proxy kubectl's WebSocket through instead of translating it to SPDY.
        "declaredFeatures": ["ExtendWebSocketsToKubelet"],
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "Alibaba Cloud ECI",
            "containerRuntimeVersion": f"eci://{vk_eci.__version__}",
            "kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version,
            "operatingSystem": "linux", "architecture": settings.architecture,
        },
    }


def build_node(settings: Settings, health: Health, kubelet_version: str, at: str,
               ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": settings.node_name, "labels": node_labels(settings),
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"taints": [node_taint()]},
        "status": node_status(settings, health, kubelet_version, at),
    }


def adoption_patch(settings: Settings, existing_taints: list[dict[str, Any]] | None,
                   ) -> dict[str, Any]:
    """Merge patch for an existing Node: our labels and taint added, others' kept."""
    taints = [t for t in existing_taints or [] if t.get("key") != TAINT_KEY]
    taints.append(node_taint())
    return {"metadata": {"labels": node_labels(settings)}, "spec": {"taints": taints}}


def kubelet_version(server_git_version: str) -> str:
    """``v1.30.2-vk-eci-0.1.0``: a semver that version-parsing components accept."""
    base = server_git_version.split("+")[0].split("-")[0] or "v0.0.0"
    return f"{base}-vk-eci-{vk_eci.__version__}"


class NodeController:
    """Registers or adopts the Node and keeps its status true to ECI's health."""

    def __init__(self, api: client.ApiClient, settings: Settings) -> None:
        self._core = client.CoreV1Api(api)
        self._version = client.VersionApi(api)
        self.settings = settings
        self.health = STARTING
        self.kubelet_version = kubelet_version("")
        self.uid = ""
        self._previous: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.settings.node_name

    async def register(self) -> None:
        """Create the Node, or adopt the one of that name."""
        try:
            info = await self._version.get_code()
            self.kubelet_version = kubelet_version(info.git_version)
        except ApiException as e:
            node_logger.warning("cannot read the API server version: %s", e.reason)
        body: Any = build_node(self.settings, self.health, self.kubelet_version, now())
        try:
            created = await self._core.create_node(body)
            self.uid = created.metadata.uid
            node_logger.info("registered node %s", self.name)
        except ApiException as e:
            if e.status != 409:
                raise
            existing = await self._core.read_node(self.name)
            patched = await self._core.patch_node(
                self.name, adoption_patch(self.settings, _dicts(existing.spec.taints)))
            self.uid = patched.metadata.uid
            node_logger.info("adopted existing node %s", self.name)
        await self.update_status(force=True)

    async def set_health(self, health: Health) -> None:
        """Record ECI's health; write the status at once when Ready changes."""
        changed = health.ok != self.health.ok
        self.health = health
        if changed:
            if health.ok:
                node_logger.info("node %s: ECI answers; node Ready", self.name)
            else:
                node_logger.warning("node %s: ECI unreachable: %s", self.name, health.message)
            await self.update_status(force=True)

    async def update_status(self, force: bool = False) -> None:
        """Patch ``nodes/status``; conditions merge by type, so others' conditions stay."""
        async with self._lock:
            at = now()
            status = node_status(self.settings, self.health, self.kubelet_version, at,
                                 self._previous)
            await self._core.patch_node_status(self.name, {"status": status})
            self._previous = status["conditions"]

    async def run(self) -> None:
        """Refresh the full status periodically (heartbeat is the Lease; this keeps it true)."""
        while True:
            await asyncio.sleep(self.settings.node_status_interval)
            try:
                await self.update_status()
            except ApiException as e:
                node_logger.warning("node %s: status update failed: %s %s", self.name,
                                    e.status, e.reason)
            except (aiohttp.ClientError, TimeoutError) as e:
                # The API server restarting is no reason to stop the node (found by the chaos
                # suite: this loop used to end the process).
                node_logger.warning("node %s: status update failed: API server unreachable: "
                                    "%s", self.name, e)


def _dicts(taints: list[Any] | None) -> list[dict[str, Any]]:
    out = []
    for t in taints or []:
        d = {"key": t.key, "effect": t.effect}
        if t.value is not None:
            d["value"] = t.value
        out.append(d)
    return out
