"""What Pod→ECI translation needs from the cluster: secrets, config maps, service links, tokens.

The cloud side never talks to Kubernetes; it asks through this object (the ``PodResources``
protocol of :mod:`vk_eci.provider`). Values returned here are secrets: they are never logged.
Service environment variables follow the kubelet (``pkg/kubelet/envvars``): for each service
with a cluster IP in the pod's namespace, plus the master service ``kubernetes``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.provider import ClaimData, ConfigMapData, SecretData

# PersistentVolume source fields (python attribute → Kubernetes name) named when unsupported.
_PV_SOURCES = {"host_path": "hostPath", "local": "local", "iscsi": "iscsi", "fc": "fc",
               "rbd": "rbd", "cephfs": "cephfs", "glusterfs": "glusterfs",
               "flex_volume": "flexVolume", "aws_elastic_block_store": "awsElasticBlockStore",
               "gce_persistent_disk": "gcePersistentDisk", "azure_disk": "azureDisk",
               "azure_file": "azureFile", "cinder": "cinder"}


class KubePodResources:
    """Reads what a pod references, through the API server."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

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
