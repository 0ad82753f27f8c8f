"""What ECI gave a pod, and the rest of ECI's pod surface, end to end: real control plane and
scheduler, the node as a subprocess, the ECI emulator on a fast real clock.

Assertions read the pod as kubectl shows it, the CreateContainerGroup request the emulator
received (found by ClientToken = pod UID) and the group ECI made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, NodeProcess, eventually

pytestmark = pytest.mark.integration

K = "k8s.aliyun.com/"


@pytest_asyncio.fixture
async def vk_node(node_factory: NodeFactory) -> NodeProcess:
    # These pods use identity and network annotations (EIP, private IP, DataCache bucket) for
    # what ECI does with them, not for who may: the policy is docs/PROFILE.md's own tests.
    return await node_factory(single_tenant=True)


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


async def test_fail_strategy_fast_fails_back_stays_pending_and_retries(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    emulator_realtime.faults.set_out_of_stock()
    try:
        await core.create_namespaced_pod(namespace, pod_body(
            "fast", vk_node.name, {K + "eci-fail-strategy": "fail-fast"}))
        await core.create_namespaced_pod(namespace, pod_body(
            "back", vk_node.name, {K + "eci-fail-strategy": "fail-back"}))

        async def fast_failed() -> Any:
            pod = await core.read_namespaced_pod("fast", namespace)
            return pod if pod.status.phase == "Failed" else None

        pod = await eventually(fast_failed, 30, "the fail-fast pod Failed", vk_node)
        assert pod.status.reason == "ProviderFailed"
        assert "NoStock" in pod.status.message
        back = await eventually(lambda: _warned(core, namespace, "back", "OutOfStock"), 30,
                                "an OutOfStock Warning on the fail-back pod", vk_node)
        assert "retried" in back
        assert (await core.read_namespaced_pod("back", namespace)).status.phase == "Pending"
    finally:
        emulator_realtime.faults.set_out_of_stock(False)

    async def back_running() -> bool:
        return (await core.read_namespaced_pod("back", namespace)).status.phase == "Running"

    await eventually(back_running, 60, "the fail-back pod Running once stock is back", vk_node)
    # fail-fast made one attempt and never retried.
    assert (await core.read_namespaced_pod("fast", namespace)).status.phase == "Failed"


async def _warned(core: client.CoreV1Api, ns: str, name: str, reason: str) -> str | None:
    return (await warnings_of(core, ns, name)).get(reason)


async def test_network_and_refused_annotations(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    created = await core.create_namespaced_pod(namespace, pod_body(
        "addressed", vk_node.name, {
            K + "eci-private-ip-address": "192.168.77.7", K + "eci-enable-ipv6": "true",
            K + "eci-ipv6-bandwidth-enable": "true", K + "eci-ipv6-bandwidth": "100M",
            K + "eci-gpu-driver-version": "tesla=535.161.08", K + "eci-fail-strategy":
            "fail-over", K + "eci-max-pending-minute": "30"}))
    refused = {
        "pool": {K + "eci-privatepool-matchcriteria": "Target", K + "eci-privatepool-id":
                 "eap-abc"},
        "encrypted": {K + "eci-ephemeral-storage-options": '{"encrypted":"true"}'},
        "evicting": {K + "eci-eviction-enable": "true"},
        "pending": {K + "eci-max-pending-minute": "5"},
        "strategy": {K + "eci-fail-strategy": "fail-later"},
    }
    for name, wanted in refused.items():
        await core.create_namespaced_pod(namespace, pod_body(name, vk_node.name, wanted))

    async def running() -> Any:
        pod = await core.read_namespaced_pod("addressed", namespace)
        return pod if pod.status.phase == "Running" else None

    pod = await eventually(running, 60, "the addressed pod Running", vk_node)
    assert pod.status.pod_ip == "192.168.77.7"
    req = request_of(emulator_realtime, created.metadata.uid)
    assert req["PrivateIpAddress"] == "192.168.77.7"
    assert req["Ipv6GatewayBandwidthEnable"].lower() == "true"
    assert req["Ipv6GatewayBandwidth"] == "100"
    assert req["GpuDriverVersion"] == "tesla=535.161.08"
    for name, wanted in refused.items():
        message = await eventually(lambda n=name: _warned(core, namespace, n,
                                                          "InvalidAnnotation"), 30,
                                   f"an InvalidAnnotation Warning on {name}", vk_node)
        assert next(iter(wanted)) in message, (name, message)
    uids = {(await core.read_namespaced_pod(n, namespace)).metadata.uid for n in refused}
    assert not [r for r in emulator_realtime.recorded("CreateContainerGroup")
                if r.get("ClientToken") in uids]


async def test_data_cache_host_path_mounts_only_under_a_bucket(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)

    def with_host_path(name: str, annotations: dict[str, str], path: str) -> Any:
        body = pod_body(name, vk_node.name, annotations,
                        volumes=[{"name": "model", "hostPath": {"path": path}}])
        body["spec"]["containers"][0]["volumeMounts"] = [{"name": "model",
                                                          "mountPath": "/models"}]
        return body

    cached = await core.create_namespaced_pod(namespace, with_host_path(
        "cached", {K + "eci-data-cache-bucket": "default"}, "/model/ms/"))
    await core.create_namespaced_pod(namespace, with_host_path("plain", {}, "/model/ms/"))
    await core.create_namespaced_pod(namespace, with_host_path(
        "system", {K + "eci-data-cache-bucket": "default"}, "/etc"))

    async def running() -> bool:
        return (await core.read_namespaced_pod("cached", namespace)).status.phase == "Running"

    await eventually(running, 60, "the DataCache pod Running", vk_node)
    req = request_of(emulator_realtime, cached.metadata.uid)
    assert req["DataCacheBucket"] == "default"
    assert req["Volume.1.Type"] == "HostPathVolume"
    assert req["Volume.1.HostPathVolume.Path"] == "/model/ms/"
    for name, why in (("plain", "eci-data-cache-bucket"), ("system", "system directory")):
        message = await eventually(lambda n=name: _warned(core, namespace, n, "UnsupportedPod"),
                                   30, f"UnsupportedPod on {name}", vk_node)
        assert why in message, message
    assert len(emulator_realtime.recorded("CreateContainerGroup")) == 1


async def test_set_image_on_a_running_pod_updates_the_group(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any, control_plane: Any) -> None:
    core = client.CoreV1Api(kube_api)
    body = pod_body("web", vk_node.name)
    body["spec"]["containers"].append({"name": "side", "image": "busybox:1.36",
                                       "command": ["sleep", "3600"]})
    body["spec"]["initContainers"] = [{"name": "setup", "image": "busybox:1.36",
                                       "command": ["true"]}]
    created = await core.create_namespaced_pod(namespace, body)

    async def running_with(image: str) -> Any:
        pod = await core.read_namespaced_pod("web", namespace)
        statuses = {c.name: c for c in pod.status.container_statuses or []}
        main = statuses.get("main")
        ok = pod.status.phase == "Running" and main is not None and main.image == image \
            and main.ready
        return pod if ok else None

    await eventually(lambda: running_with("nginx:1.25"), 60, "web Running", vk_node)
    control_plane.kubectl("set", "image", "pod/web", "-n", namespace, "main=nginx:1.27")
    pod = await eventually(lambda: running_with("nginx:1.27"), 60,
                           "web Running with the new image", vk_node)
    group = group_of(emulator_realtime, created.metadata.uid)
    assert {c.name: c.image for c in group.containers} == {"main": "nginx:1.27",
                                                            "side": "busybox:1.36"}
    [update] = emulator_realtime.recorded("UpdateContainerGroup")
    assert update["UpdateType"] == "RenewUpdate"
    assert update["ContainerGroupId"] == group.id
    assert {update["Container.1.Name"], update["Container.2.Name"]} == {"main", "side"}
    items = (await core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=web")).items
    updating = [e for e in items if e.reason == "UpdatingImage"]
    assert updating and "nginx:1.25 -> nginx:1.27" in updating[0].message
    assert pod.metadata.uid == created.metadata.uid   # the same pod, not a new one
    # An init container's image is not applied in place: a Warning says so, ECI is not asked.
    control_plane.kubectl("set", "image", "pod/web", "-n", namespace, "setup=busybox:1.37")
    message = await eventually(lambda: _warned(core, namespace, "web", "ImageUpdateNotApplied"),
                               30, "ImageUpdateNotApplied on web", vk_node)
    assert "setup" in message and "restarting the whole instance" in message
    assert len(emulator_realtime.recorded("UpdateContainerGroup")) == 1
