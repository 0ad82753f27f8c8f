"""The ECI profile's policy enforced by the node at group creation (no webhook in the way):
real control plane, the node as a subprocess, the ECI emulator. A pod annotated with what its
namespace may not use never reaches ECI (no CreateContainerGroup with its ClientToken), gets a
``PolicyDenied`` event naming annotation, value and rule, and stays Pending; an allowed
namespace runs; a profile edit applies to the next pod and to the denied ones, no restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.fixtures.controlplane import scratch_namespace
from tests.fixtures.node import NodeFactory, NodeProcess, eventually

pytestmark = pytest.mark.integration

K = "k8s.aliyun.com/"

# family -> the other team's annotations (each pod one family)
DENIED = {
    "ram-role": {K + "eci-ram-role-name": "team-b-role"},
    "security-group": {K + "eci-security-group": "sg-teamb"},
    "eip": {K + "eci-with-eip": "true", K + "eip-bandwidth": "500"},
    "oversize": {K + "eci-use-specs": "64-512Gi"},
    "gpu-type": {K + "eci-use-specs": "ecs.gn6i-c4g1.xlarge"},
}


def policy(ns: str, **allow: Any) -> dict[str, str]:
    return {"policy": yaml.safe_dump({"rules": [{"name": "team-a", "namespaces": [ns],
                                                  "allow": allow}]})}


def pod_body(name: str, node: str, annotations: dict[str, str], gpus: int = 0) -> Any:
    resources: dict[str, Any] = {"requests": {"cpu": "10m", "memory": "64Mi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {"metadata": {"name": name, "annotations": annotations},
            "spec": {"nodeName": node, "containers": [{
                "name": "main", "image": "nginx:1.25", "resources": resources}]}}


def requests_of(emu: Any, uid: str) -> list[dict[str, str]]:
    return [r for r in emu.recorded("CreateContainerGroup") if r.get("ClientToken") == uid]


async def denied_event(core: client.CoreV1Api, ns: str, name: str) -> Any:
    events = (await core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}")).items
    return next((e for e in events if e.reason == "PolicyDenied"), None)


async def running(core: client.CoreV1Api, ns: str, name: str) -> Any:
    pod = await core.read_namespaced_pod(name, ns)
    return pod if pod.status.phase == "Running" else None


@pytest.fixture
def team_b(control_plane: Any) -> Iterator[str]:
    with scratch_namespace(control_plane, f"b-{uuid.uuid4().hex[:8]}") as name:
        yield name


async def put_profile(core: client.CoreV1Api, ns: str, data: dict[str, str]) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="eci-profile"), data=data)
    try:
        await core.replace_namespaced_config_map("eci-profile", ns, body)
    except client.exceptions.ApiException as e:
        if e.status != 404:
            raise
        await core.create_namespaced_config_map(ns, body)


async def test_the_node_denies_what_the_profile_does_not_allow_and_reloads_it(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str, team_b: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    await put_profile(core, namespace, policy(namespace, ramRoles=["team-a-role"],
                                              securityGroups=["sg-teama"],
                                              gpuTypes=["ecs.gn6i-c4g1.xlarge"]))
    node: NodeProcess = await node_factory(profile_configmap=f"{namespace}/eci-profile")
    # team-b: none of its pods reaches ECI. (Service accounts come with the namespace.)
    uids = {}
    for family, anns in DENIED.items():
        created = await eventually(lambda f=family, a=anns: core.create_namespaced_pod(
            team_b, pod_body(f, node.name, a, gpus=1 if f == "gpu-type" else 0)), 30,
            f"pod {family} created")
        uids[family] = created.metadata.uid
    rules = {"ram-role": "ramRoles", "security-group": "securityGroups", "eip": "eipCreate",
             "oversize": "instanceTypes", "gpu-type": "gpuTypes"}
    for family, anns in DENIED.items():
        event = await eventually(lambda f=family: denied_event(core, team_b, f), 60,
                                 f"PolicyDenied on {family}", node)
        key, value = next(iter(anns.items()))
        assert key in event.message and repr(value) in event.message, event.message
        assert f"rule {rules[family]}" in event.message and "single-tenant" in event.message
        assert event.type == "Warning"
    # team-a: its own role runs; the GPU type it may use needs a GPU node (this one has none)
    await eventually(lambda: core.create_namespaced_pod(namespace, pod_body(
        "mine", node.name, {K + "eci-ram-role-name": "team-a-role",
                            K + "eci-security-group": "sg-teama"})), 30, "team-a pod created")
    await core.create_namespaced_pod(namespace, pod_body(
        "gpu", node.name, {K + "eci-use-specs": "ecs.gn6i-c4g1.xlarge"}, gpus=1))
    mine = await eventually(lambda: running(core, namespace, "mine"), 90, "team-a Running", node)
    [req] = requests_of(emulator_realtime, mine.metadata.uid)
    assert req["RamRoleName"] == "team-a-role" and req["SecurityGroupId"] == "sg-teama"
    gpu_event = await eventually(lambda: denied_event(core, namespace, "gpu"), 60,
                                 "PolicyDenied on the GPU pod", node)
    assert "rule nodeGpus" in gpu_event.message
    for family, uid in uids.items():
        assert requests_of(emulator_realtime, uid) == [], f"{family} reached ECI"
        pod = await core.read_namespaced_pod(family, team_b)
        assert pod.status.phase == "Pending" and pod.status.reason == "PolicyDenied"
    # one event each, not a retry storm
    events = (await core.list_namespaced_event(team_b)).items
    assert all(e.count in (None, 1) for e in events if e.reason == "PolicyDenied")

    # Hot reload: team-b may now use its role, and the cluster's vSwitches change. The denied
    # pod is looked at again and runs; the next pod gets the new vSwitch. No restart.
    starts = node.starts
    await put_profile(core, namespace, {
        "vSwitchIds": "vsw-profile1,vsw-profile2", "securityGroupId": "sg-profile",
        **policy(team_b, ramRoles=["team-b-role"])})
    role_pod = await eventually(lambda: running(core, team_b, "ram-role"), 90,
                                "the once-denied pod Running after the profile edit", node)
    [req] = requests_of(emulator_realtime, role_pod.metadata.uid)
    assert req["RamRoleName"] == "team-b-role"
    assert req["VSwitchId"] == "vsw-profile1,vsw-profile2"
    assert req["SecurityGroupId"] == "sg-profile" and "ZoneId" not in req
    assert node.starts == starts
    # ... and team-a, no longer named, is denied its role
    await core.create_namespaced_pod(namespace, pod_body(
        "mine2", node.name, {K + "eci-ram-role-name": "team-a-role"}))
    assert await eventually(lambda: denied_event(core, namespace, "mine2"), 60,
                            "PolicyDenied after the edit", node)


async def test_single_tenant_mode_allows_every_namespace_everything(
        node_factory: NodeFactory, kube_api: client.ApiClient, team_b: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    node = await node_factory(single_tenant=True, profile_configmap=f"{team_b}/eci-profile")
    created = await eventually(lambda: core.create_namespaced_pod(team_b, pod_body(
        "any", node.name, {**DENIED["ram-role"], **DENIED["security-group"],
                           K + "eci-use-specs": "8-16Gi"})), 30, "pod created")
    await eventually(lambda: running(core, team_b, "any"), 90, "Running", node)
    [req] = requests_of(emulator_realtime, created.metadata.uid)
    assert req["RamRoleName"] == "team-b-role" and req["SecurityGroupId"] == "sg-teamb"
    assert await denied_event(core, team_b, "any") is None


async def configmap_event(core: client.CoreV1Api, ns: str, reason: str) -> Any:
    events = (await core.list_namespaced_event(
        ns, field_selector="involvedObject.kind=ConfigMap,involvedObject.name=eci-profile")).items
    return next((e for e in events if e.reason == reason), None)


async def test_a_profile_the_node_cannot_take_is_an_event_on_its_configmap(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    await put_profile(core, namespace, {"securityGroupId": "sg-good"})
    await node_factory(profile_configmap=f"{namespace}/eci-profile")
    taken = await eventually(lambda: configmap_event(core, namespace, "ProfileTaken"), 60,
                             "ProfileTaken on the ConfigMap")
    assert taken.type == "Normal"
    # An operator's typo: the node keeps the last good profile and says why where they look.
    await put_profile(core, namespace, {"securityGroupId": "default"})
    rejected = await eventually(lambda: configmap_event(core, namespace, "ProfileRejected"), 60,
                                "ProfileRejected on the ConfigMap")
    assert rejected.type == "Warning"
    assert "securityGroupId" in rejected.message and "'default'" in rejected.message, (
        rejected.message)
    assert "keeps the last good one" in rejected.message
