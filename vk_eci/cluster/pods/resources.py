"""What Pod→ECI translation needs from the cluster: secrets, config maps, service links, tokens.

The cloud side never talks to Kubernetes; it asks through this object (the ``PodResources``
protocol of :mod:`vk_eci.provider`). Values returned here are secrets: they are never logged.
Service environment variables follow the kubelet (``pkg/kubelet/envvars``): for each service
with a cluster IP in the pod's namespace, plus the master service ``kubernetes``.

Two reads are shared by the pods created within ``SHARED_FOR`` seconds of each other: a
namespace's services (the kubelet reads them from a cluster-wide watch, as fresh or stale) and
``kube-root-ca.crt`` (published by the controller manager, changed only when the cluster's CA
is), which every pod with a service account token projects. Measured at 200 pods in a burst
(benchmarks/bench_vs_virtual_kubelet.py) they were three of the node's ten API requests per pod.
Other config maps and secrets are read per pod: fresh, and secrets never held.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cloud.api.errors import MissingDependency
from vk_eci.provider import ClaimData, ConfigMapData, SecretData
from vk_eci.sharing import TtlCache, single_flight

# PersistentVolume source fields (python attribute → Kubernetes name) named when unsupported.
_PV_SOURCES = {"host_path": "hostPath", "local": "local", "iscsi": "iscsi", "fc": "fc",
               "rbd": "rbd", "cephfs": "cephfs", "glusterfs": "glusterfs",
               "flex_volume": "flexVolume", "aws_elastic_block_store": "awsElasticBlockStore",
               "gce_persistent_disk": "gcePersistentDisk", "azure_disk": "azureDisk",
               "azure_file": "azureFile", "cinder": "cinder"}


SHARED_FOR = 2.0  # seconds a namespace's services and the root CA are reused across pods
ROOT_CA = "kube-root-ca.crt"
T = TypeVar("T")


class Shared(Generic[T]):
    """One read per key at a time, its answer reused for ``ttl`` seconds (failures are not)."""

    def __init__(self, ttl: float = SHARED_FOR,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._done: TtlCache[tuple[T]] = TtlCache(clock=clock)
        self._running: dict[str, asyncio.Task[T]] = {}

    async def get(self, key: str, read: Callable[[], Awaitable[T]]) -> T:
        hit = self._done.get(key)
        if hit is not None:
            return hit[0]
        value = await single_flight(self._running, key, read, name="pod-resources-read")
        self._done.put(key, (value,), self._ttl)
        return value


class KubePodResources:
    """Reads what a pod references, through the API server."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._services: Shared[Mapping[str, str]] = Shared()
        self._root_ca: Shared[ConfigMapData | None] = Shared()
        self._proxy_tokens: Shared[str] | None = None

    async def secret(self, namespace: str, name: str) -> SecretData | None:
        """The secret's type and decoded data; None when it does not exist."""
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return SecretData(type=str(secret.type or "Opaque"),
                          data={k: base64.b64decode(v) for k, v in (secret.data or {}).items()})

    async def config_map(self, namespace: str, name: str) -> ConfigMapData | None:
        """The config map's data and decoded binaryData; None when it does not exist."""
        if name == ROOT_CA:
            return await self._root_ca.get(namespace, lambda: self._config_map(namespace, name))
        return await self._config_map(namespace, name)

    async def _config_map(self, namespace: str, name: str) -> ConfigMapData | None:
        try:
            cm = await self._core.read_namespaced_config_map(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return ConfigMapData(
            data=dict(cm.data or {}),
            binary_data={k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})

    async def service_env(self, namespace: str) -> Mapping[str, str]:
        """Service link variables for a pod in ``namespace`` (``enableServiceLinks``)."""
        return await self._services.get(namespace, lambda: self._service_env(namespace))

    async def _service_env(self, namespace: str) -> Mapping[str, str]:
        services = list((await self._core.list_namespaced_service(namespace)).items)
        if namespace != "default":
            try:
                services.append(await self._core.read_namespaced_service("kubernetes",
                                                                         "default"))
            except ApiException as e:
                if e.status != 404:
                    raise
        env: dict[str, str] = {}
        # Later services do not override earlier ones of the same variable name (the pod's own
        # namespace first), matching the kubelet.
        for svc in services:
            for k, v in service_link_env(svc).items():
                env.setdefault(k, v)
        return env

    async def service_account_token(self, pod: Any, audience: str | None,
                                    expiration_seconds: int | None) -> str:
        """A TokenRequest token for the pod's service account, bound to the pod (like the
        kubelet's projected token)."""
        spec: dict[str, Any] = {
            "audiences": [audience] if audience else [],
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                               "uid": pod.metadata.uid}}
        if expiration_seconds:
            spec["expirationSeconds"] = expiration_seconds
        body: Any = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": spec}
        account = pod.spec.service_account_name or "default"
        result = await self._core.create_namespaced_service_account_token(
            account, pod.metadata.namespace, body)
        return str(result.status.token)

    async def proxy_token(self, namespace: str, account: str, node: str, seconds: int) -> str:
        """A token for the kube-proxy injected into groups, bound to the virtual Node (the API
        server binds a token to a pod only in the account's own namespace). Bound to the
        Node, not a pod, one token serves every group created within a tenth of its life (at
        most 10 minutes): each still gets over 90% of it, for one TokenRequest per burst."""
        if self._proxy_tokens is None:
            self._proxy_tokens = Shared(ttl=min(600.0, seconds / 10))
        return await self._proxy_tokens.get(
            f"{namespace}/{account}/{node}/{seconds}",
            lambda: self._proxy_token(namespace, account, node, seconds))

    async def _proxy_token(self, namespace: str, account: str, node: str, seconds: int) -> str:
        body: Any = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"audiences": [], "expirationSeconds": seconds,
                              "boundObjectRef": {"apiVersion": "v1", "kind": "Node",
                                                 "name": node}}}
        try:
            result = await self._core.create_namespaced_service_account_token(account,
                                                                              namespace, body)
        except ApiException as e:
            if e.status != 404:
                raise
            # Retried as a missing Secret is: the account may be created just after.
            raise MissingDependency(
                f"service account {namespace}/{account}",
                "the kube-proxy injected into the pod's group gets its token (create it and "
                "bind it to system:node-proxier as the chart does, or run the node with "
                "--cluster-ip-mode none)", event="ClusterIPAccountNotFound") from e
        return str(result.status.token)

    async def persistent_volume_claim(self, namespace: str, name: str) -> ClaimData | None:
        """The claim and, when bound, its PersistentVolume's source; None when absent."""
        try:
            claim = await self._core.read_namespaced_persistent_volume_claim(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        phase = str(claim.status.phase if claim.status else "Pending")
        volume = claim.spec.volume_name
        if phase != "Bound" or not volume:
            return ClaimData(phase=phase if phase != "Bound" else "Pending")
        try:
            pv = await self._core.read_persistent_volume(volume)
        except ApiException as e:
            if e.status == 404:
                return ClaimData(phase="Lost", volume_name=volume)
            raise
        return claim_data(pv)


def claim_data(pv: Any) -> ClaimData:
    """The :class:`ClaimData` of a bound claim's PersistentVolume."""
    spec = pv.spec
    capacity = (spec.capacity or {}).get("storage")
    if spec.nfs is not None:
        return ClaimData("Bound", pv.metadata.name, "nfs",
                         {"server": spec.nfs.server, "path": spec.nfs.path},
                         bool(spec.nfs.read_only), capacity)
    if spec.csi is not None:
        attrs = {str(k): str(v) for k, v in (spec.csi.volume_attributes or {}).items()}
        attrs.update(driver=spec.csi.driver, volumeHandle=spec.csi.volume_handle)
        if spec.csi.fs_type:
            attrs["fsType"] = spec.csi.fs_type
        return ClaimData("Bound", pv.metadata.name, "csi", attrs, bool(spec.csi.read_only),
                         capacity)
    source = next((k8s for attr, k8s in _PV_SOURCES.items()
                   if getattr(spec, attr, None) is not None), "unknown")
    return ClaimData("Bound", pv.metadata.name, source, {}, False, capacity)


def service_link_env(svc: Any) -> dict[str, str]:
    """Environment variables the kubelet derives from one Service."""
    ip = svc.spec.cluster_ip
    if not ip or ip == "None" or not svc.spec.ports:
        return {}
    name = svc.metadata.name.upper().replace("-", "_")
    env: dict[str, str] = {f"{name}_SERVICE_HOST": ip}
    first = svc.spec.ports[0]
    env[f"{name}_SERVICE_PORT"] = str(first.port)
    for port in svc.spec.ports:
        if port.name:
            env[f"{name}_SERVICE_PORT_{port.name.upper().replace('-', '_')}"] = str(port.port)
    proto = (first.protocol or "TCP").lower()
    env[f"{name}_PORT"] = f"{proto}://{ip}:{first.port}"
    for port in svc.spec.ports:
        p = (port.protocol or "TCP")
        prefix = f"{name}_PORT_{port.port}_{p.upper()}"
        env[prefix] = f"{p.lower()}://{ip}:{port.port}"
        env[f"{prefix}_PROTO"] = p.lower()
        env[f"{prefix}_PORT"] = str(port.port)
        env[f"{prefix}_ADDR"] = ip
    return env
