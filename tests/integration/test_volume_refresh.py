"""Refreshed ConfigMap files by restart, opt-in per pod (docs/BEHAVIOUR.md §6), end to end: real
control plane and scheduler, the node as a subprocess, the ECI emulator on a fast real clock.

Assertions read the UpdateContainerGroup requests the emulator received, the group it keeps
(its volumes' content, its containers' restarts as the pod's status shows them) and the pod's
events.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, eventually

pytestmark = pytest.mark.integration

K = "k8s.aliyun.com/"
INTERVAL = 2  # --volume-refresh-interval of the test node, seconds


def pod_body(name: str, node: str, annotations: dict[str, str]) -> Any:
    return {"metadata": {"name": name, "annotations": annotations},
            "spec": {"nodeName": node, "containers": [
                {"name": "main", "image": "nginx:1.25", "command": ["sleep", "3600"],
                 "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"}]}],
                "volumes": [{"name": "conf", "configMap": {"name": "conf"}}]}}


def group_of(emu: Any, uid: str) -> Any:
    for group in emu.state.groups.values():
        if dict(group.tags).get(K + "pod-uid") == uid:
            return group
    return None


def content_of(group: Any) -> str:
    """The text of the group's ``conf`` volume file ``a.txt``, as ECI holds it."""
    [volume] = [v for v in group.raw["Volume"] if v["Name"] == "conf"]
    [item] = [p for p in volume["ConfigFileVolume"]["ConfigFileToPath"] if p["Path"] == "a.txt"]
    return base64.b64decode(item["Content"]).decode()


def updates_of(emu: Any, group_id: str) -> list[dict[str, str]]:
    return [r for r in emu.recorded("UpdateContainerGroup") if r.get("ContainerGroupId") ==
            group_id]


async def test_opted_in_pod_gets_edited_config_map_by_restart_and_others_do_not(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    node = await node_factory(volume_refresh_interval=str(INTERVAL))
    core = client.CoreV1Api(kube_api)
    emu = emulator_realtime
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "conf"},
                                                        "data": {"a.txt": "one"}})
    opted = await core.create_namespaced_pod(namespace, pod_body(
        "opted", node.name, {"vk-eci.io/refresh-volumes": "restart"}))
    plain = await core.create_namespaced_pod(namespace, pod_body("plain", node.name, {}))

    async def running(name: str) -> Any:
        pod = await core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        return pod if pod.status.phase == "Running" and statuses and statuses[0].ready \
            else None

    for name in ("opted", "plain"):
        await eventually(lambda n=name: running(n), 60, f"{name} Running", node)  # type: ignore[misc]
    a, b = group_of(emu, opted.metadata.uid), group_of(emu, plain.metadata.uid)
    assert content_of(a) == content_of(b) == "one"

    async def edit(text: str) -> None:
        await core.patch_namespaced_config_map("conf", namespace, {"data": {"a.txt": text}})

    await edit("two")
    [update] = await eventually(lambda: _async(updates_of(emu, a.id)), 30,
                                "an UpdateContainerGroup of the opted-in group", node)
    assert update["UpdateType"] == "IncrementalUpdate"
    assert update["Volume.1.Name"] == "conf" and "Container.1.Name" not in update
    sent = {update[k.replace(".Path", ".Content")] for k in update
            if k.startswith("Volume.1.ConfigFileVolume.ConfigFileToPath.") and
            k.endswith(".Path") and update[k] == "a.txt"}
    assert sent == {base64.b64encode(b"two").decode()}
    assert content_of(group_of(emu, opted.metadata.uid)) == "two"

    async def restarted() -> Any:
        pod = await running("opted")
        return pod if pod is not None and pod.status.container_statuses[0].restart_count == 1 \
            else None

    await eventually(restarted, 60, "opted Running again after one restart", node)
    events = (await core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=opted")).items
    [event] = [e for e in events if e.reason == "RefreshingVolumes"]
    assert event.type == "Normal" and "conf" in event.message and "restarts" in event.message

    # Edits in a burst are coalesced: at most one refresh per pod per interval.
    for text in ("three", "four", "five"):
        await edit(text)
        await asyncio.sleep(0.1)
    await eventually(lambda: _async(content_of(group_of(emu, opted.metadata.uid)) == "five"),
                     30, "the last edit reaches the opted-in group", node)
    assert len(updates_of(emu, a.id)) == 2
    # The pod without the annotation: never updated, its files as at creation.
    assert updates_of(emu, b.id) == []
    assert content_of(group_of(emu, plain.metadata.uid)) == "one"
    plain_pod = await core.read_namespaced_pod("plain", namespace)
    assert plain_pod.status.container_statuses[0].restart_count == 0


async def test_bad_refresh_annotation_is_refused_by_name(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    node = await node_factory()
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "conf"},
                                                        "data": {"a.txt": "one"}})
    await core.create_namespaced_pod(namespace, pod_body(
        "bad", node.name, {"vk-eci.io/refresh-volumes": "always"}))

    async def warned() -> Any:
        events = (await core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=bad")).items
        return next((e for e in events if e.reason == "InvalidAnnotation"), None)

    event = await eventually(warned, 30, "InvalidAnnotation on bad", node)
    assert "vk-eci.io/refresh-volumes" in event.message and "restart" in event.message
    assert emulator_realtime.recorded("CreateContainerGroup") == []


async def _async(value: Any) -> Any:
    return value
