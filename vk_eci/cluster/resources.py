"""What Pod→ECI translation needs from the cluster: secrets, config maps, service links, tokens.

The cloud side never talks to Kubernetes; it asks through this object (the ``PodResources``
protocol of :mod:`vk_eci.provider`). Values returned here are secrets: they are never logged.
Service environment variables follow the kubelet (``pkg/kubelet/envvars``): for each service
with a cluster IP in the pod's namespace, plus the master service ``kubernetes``.
"""

from __future__ import annotations

import base64
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException


class KubePodResources:
    """Reads what a pod references, through the API server."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    async def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The secret's data, decoded; None when it does not exist."""
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    async def get_secret_type(self, namespace: str, name: str) -> str | None:
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return str(secret.type or "Opaque")

    async def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        """The config map's data (binaryData base64 as stored); None when it does not exist."""
        try:
            cm = await self._core.read_namespaced_config_map(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        data: dict[str, str] = dict(cm.data or {})
        data.update(cm.binary_data or {})
        return data

    async def service_env(self, namespace: str) -> dict[str, str]:
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

    async def service_account_token(self, namespace: str, service_account: str,
                                    audiences: list[str] | None, expiration_seconds: int,
                                    pod_name: str, pod_uid: str) -> str:
        """A TokenRequest token bound to the pod (like the kubelet's projected token)."""
        body: Any = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": audiences or [], "expirationSeconds": expiration_seconds,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name,
                                        "uid": pod_uid}},
        }
        result = await self._core.create_namespaced_service_account_token(
            service_account, namespace, body)
        return str(result.status.token)


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
