"""What ECI gave a pod, and the rest of ECI's pod surface, end to end: real control plane and
scheduler, the node as a subprocess, the ECI emulator on a fast real clock.

Assertions read the pod as kubectl shows it, the CreateContainerGroup request the emulator
received (found by ClientToken = pod UID) and the group ECI made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually

pytestmark = pytest.mark.integration

K = "k8s.aliyun.com/"


def pod_body(name: str, node: str, annotations: dict[str, str] | None = None,
             **spec: Any) -> Any:
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"nodeName": node, "containers": [
                {"name": "main", "image": "nginx:1.25", "command": ["sleep", "3600"]}],
                **spec}}


def group_of(emu: Any, uid: str) -> Any:
    for group in emu.state.groups.values():
        if dict(group.tags).get(K + "pod-uid") == uid:
            return group
    return None


def request_of(emu: Any, uid: str) -> dict[str, str]:
    for req in emu.recorded("CreateContainerGroup"):
        if req.get("ClientToken") == uid:
            return dict(req)
    raise AssertionError(f"no CreateContainerGroup with ClientToken {uid}")


async def warnings_of(core: client.CoreV1Api, ns: str, name: str) -> dict[str, str]:
    items = (await core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}")).items
    return {e.reason: e.message for e in items if e.type == "Warning"}


async def test_running_pod_shows_what_eci_allocated(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any, control_plane: Any) -> None:
    core = client.CoreV1Api(kube_api)
    created = await core.create_namespaced_pod(namespace, pod_body(
        "allocated", vk_node.name, {K + "eci-with-eip": "true", K + "eci-enable-ipv6": "true"},
        ))

    async def annotated() -> dict[str, Any] | None:
        out = control_plane.kubectl("get", "pod", "allocated", "-n", namespace, "-o", "yaml")
        pod = yaml.safe_load(out.stdout)
        ok = pod["status"].get("phase") == "Running" and \
            K + "eci-instance-id" in (pod["metadata"].get("annotations") or {})
        return pod if ok else None

    pod = await eventually(annotated, 60, "a Running pod with ECI's allocation", vk_node)
    group = group_of(emulator_realtime, created.metadata.uid)
    annotations = pod["metadata"]["annotations"]
    assert annotations[K + "eci-instance-id"] == group.id
    assert annotations[K + "eci-instance-zone"] == group.zone
    assert annotations[K + "eci-instance-spec"] == f"{group.cpu:.1f}-{group.memory:.1f}Gi"
    assert annotations[K + "allocated-eipAddress"] == group.placed.internet_ip
    assert annotations[K + "allocated-ipv6Address"] == group.placed.ipv6
    assert annotations[K + "eni-instance-id"].startswith("eni-")
    # Written once: further polls leave the pod alone.
    await asyncio.sleep(3)
    version = (await core.read_namespaced_pod("allocated", namespace)).metadata.resource_version
    await asyncio.sleep(3)
    assert (await core.read_namespaced_pod("allocated", namespace)
            ).metadata.resource_version == version
