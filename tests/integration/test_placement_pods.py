"""ECI placement annotations, GPU/arch/ephemeral-storage capacity and spot preemption, end to end:
real control plane and scheduler, the node as a subprocess, the ECI emulator on a fast real
clock (0.01: ECI's three-minute spot warning lasts 1.8 s).

Each annotation family is one pod; the assertions read the CreateContainerGroup request the
emulator received (found by ClientToken = pod UID), the group ECI made, and the pod.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, NodeProcess, eventually

pytestmark = pytest.mark.integration

TOLERATE = [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}]
K = "k8s.aliyun.com/"

# family -> (annotations, fields the request must carry)
FAMILIES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "spot": ({K + "eci-spot-strategy": "SpotWithPriceLimit", K + "eci-spot-price-limit": "0.5",
              K + "eci-spot-duration": "0"},
             {"SpotStrategy": "SpotWithPriceLimit", "SpotPriceLimit": "0.5", "SpotDuration": "0"}),
    "eip": ({K + "eci-with-eip": "true", K + "eip-bandwidth": "20", K + "eip-isp": "BGP"},
            {"AutoCreateEip": "true", "EipBandwidth": "20", "EipISP": "BGP"}),
    "identity": ({K + "eci-ram-role-name": "AliyunECIContainerGroupRole"},
                 {"RamRoleName": "AliyunECIContainerGroupRole"}),
    "network": ({K + "eci-vswitch": "vsw-pod1,vsw-pod2", K + "eci-schedule-strategy":
                 "VSwitchOrdered", K + "eci-security-group": "sg-pod", K + "eci-enable-ipv6":
                 "true", K + "eci-fixed-ip": "true", "kubernetes.io/egress-bandwidth": "20M"},
                {"VSwitchId": "vsw-pod1,vsw-pod2", "ScheduleStrategy": "VSwitchOrdered",
                 "SecurityGroupId": "sg-pod", "Ipv6AddressCount": "1", "FixedIp": "true",
                 "EgressBandwidth": "20000000"}),
    "sizing": ({K + "eci-compute-category": "economy", K + "eci-extra-ephemeral-storage": "50Gi",
                K + "eci-use-specs": "ecs.c6.xlarge", K + "eci-cpu-option-core": "2",
                K + "eci-cpu-option-ht": "1"},
               {"ComputeCategory.1": "economy", "EphemeralStorage": "50",
                "InstanceType": "ecs.c6.xlarge", "CpuOptionsCore": "2",
                "CpuOptionsThreadsPerCore": "1"}),
    "family": ({K + "eci-instance-family": "ecs.g6,ecs.c6"},
               {"InstanceType": "ecs.g6.large,ecs.c6.large", "Cpu": "2.0", "Memory": "4.0"}),
    "family-excluded": ({K + "eci-instance-family": "-ecs.c7,-ecs.c6"},
                        {"InstanceType": "ecs.c5.large,ecs.g7.large,ecs.g6.large,ecs.g5.large,"
                                         "ecs.r7.large"}),
    "instance": ({K + "eci-core-pattern": "/pod/data/dump/core", K + "eci-ntp-server":
                  "100.100.5.1", K + "eci-custom-tags": "env:test,team:ml"},
                 {"CorePattern": "/pod/data/dump/core", "NtpServer.1": "100.100.5.1"}),
    "registries": ({K + "acr-instance-ids": "cn-beijing:cri-abc123", K + "plain-http-registry":
                    "harbor.local:80", K + "insecure-registry": "registry.local"},
                   {"AcrRegistryInfo.1.InstanceId": "cri-abc123",
                    "AcrRegistryInfo.1.RegionId": "cn-beijing",
                    "PlainHttpRegistry": "harbor.local:80", "InsecureRegistry": "registry.local"}),
}


def pod_body(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> Any:
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.25",
                                     "command": ["sleep", "3600"]}], **spec}}


def request_of(emu: Any, uid: str) -> dict[str, str]:
    for req in emu.recorded("CreateContainerGroup"):
        if req.get("ClientToken") == uid:
            return dict(req)
    raise AssertionError(f"no CreateContainerGroup with ClientToken {uid}")


def group_of(emu: Any, uid: str) -> Any:
    for group in emu.state.groups.values():
        if dict(group.tags).get(K + "pod-uid") == uid:
            return group
    return None


async def reasons(core: client.CoreV1Api, ns: str, name: str) -> dict[str, list[Any]]:
    items = (await core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}")).items
    out: dict[str, list[Any]] = {}
    for e in items:
        out.setdefault(e.reason, []).append(e)
    return out


async def _started_events(core: client.CoreV1Api, ns: str, name: str) -> dict[str, list[Any]]:
    seen = await reasons(core, ns, name)
    return seen if "Started" in seen else {}


async def test_each_annotation_family_reaches_eci_and_the_pod_runs(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    # Single-tenant mode: every annotation is the pod's to use (the profile's policy would deny
    # the identity, network and sizing families; tests/integration/test_profile_policy.py).
    vk_node = await node_factory(single_tenant=True)
    core = client.CoreV1Api(kube_api)
    uids = {}
    for family, (wanted, _) in FAMILIES.items():
        created = await core.create_namespaced_pod(
            namespace, pod_body(family, wanted, nodeName=vk_node.name))
        uids[family] = created.metadata.uid

    async def all_running() -> bool:
        pods = (await core.list_namespaced_pod(namespace)).items
        return len(pods) == len(FAMILIES) and all(p.status.phase == "Running" for p in pods)

    await eventually(all_running, 90, "a Running pod per annotation family", vk_node)
    for family, (_, expected) in FAMILIES.items():
        req = request_of(emulator_realtime, uids[family])
        for key, value in expected.items():
            assert req.get(key, "").lower() == value.lower(), (family, key, req.get(key))
        # ECI's own start-up events reach the pod; valid annotations draw no Warning.
        seen = await eventually(lambda f=family: _started_events(core, namespace, f), 30,
                                f"ECI's Started event on {family}", vk_node)
        assert not [r for r, evs in seen.items() if any(e.type == "Warning" for e in evs)], \
            (family, sorted(seen))
    # The node's own placement is replaced, not merged, by the pod's.
    network = request_of(emulator_realtime, uids["network"])
    assert "ZoneId" not in network
    assert request_of(emulator_realtime, uids["spot"])["VSwitchId"] == "vsw-test"
    tags = request_of(emulator_realtime, uids["instance"])
    custom = {tags[k]: tags[k.replace(".Key", ".Value")] for k in tags
              if k.startswith("Tag.") and k.endswith(".Key")}
    assert custom["env"] == "test" and custom["team"] == "ml"
    assert custom[K + "pod-uid"] == uids["instance"]
    # What ECI made of them: an EIP, an IPv6 address, the pod's vSwitch; the pod shows its IP.
    eip_group = group_of(emulator_realtime, uids["eip"])
    assert eip_group.placed.internet_ip.startswith("203.0.113.")
    net_group = group_of(emulator_realtime, uids["network"])
    assert net_group.placed.ipv6 and net_group.placed.vswitch == "vsw-pod1"
    net_pod = await core.read_namespaced_pod("network", namespace)
    assert net_pod.status.pod_ip == net_group.intranet_ip
    spot_group = group_of(emulator_realtime, uids["spot"])
    assert spot_group.placed.spot_strategy == "SpotWithPriceLimit"


async def test_bad_annotations_are_named_and_nothing_is_created(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    bad = await core.create_namespaced_pod(namespace, pod_body(
        "bad", {K + "eci-spot-strategy": "Cheapest"}, nodeName=vk_node.name))
    # Valid annotations, but a limit under ECI's spot price: ECI itself refuses the create.
    low = await core.create_namespaced_pod(namespace, pod_body(
        "low", {K + "eci-spot-strategy": "SpotWithPriceLimit", K + "eci-spot-price-limit": "0.001"},
        nodeName=vk_node.name))

    async def warned() -> Any:
        found = await reasons(core, namespace, "bad")
        return found.get("InvalidAnnotation")

    [event] = await eventually(warned, 60, "InvalidAnnotation event", vk_node)
    assert event.type == "Warning"
    assert K + "eci-spot-strategy" in event.message and "Cheapest" in event.message

    async def refused() -> Any:
        return [e for e in (await reasons(core, namespace, "low")).get("ProviderFailed", [])
                if "InvalidSpotPriceLimit.LowerThanPublicPrice" in e.message]

    await eventually(refused, 60, "ProviderFailed naming the spot price", vk_node)
    tokens = [r.get("ClientToken") for r in emulator_realtime.recorded("CreateContainerGroup")]
    assert bad.metadata.uid not in tokens  # refused before any call
    assert group_of(emulator_realtime, low.metadata.uid) is None
    assert "Cheapest" in vk_node.logs() and "InvalidAnnotation" in vk_node.logs()
    assert (await core.read_namespaced_pod("bad", namespace)).status.phase == "Pending"


async def metric(node: NodeProcess, name: str) -> float:
    async with aiohttp.ClientSession() as http, \
            http.get(node.metrics_url) as resp:
        text = await resp.text()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def spot_template(node: NodeProcess, **spec: Any) -> Any:
    """A pod template for ``node``: spot at market price, no protection period."""
    return pod_body("x", {K + "eci-spot-strategy": "SpotAsPriceGo", K + "eci-spot-duration": "0"},
                    nodeSelector={"kubernetes.io/hostname": node.name}, tolerations=TOLERATE,
                    **spec)


async def test_preempted_spot_pod_fails_visibly_and_its_deployment_replaces_it(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    template = spot_template(vk_node, terminationGracePeriodSeconds=2)
    template["metadata"]["labels"] = {"app": "spot"}
    await apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "spot"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "spot"}},
                 "template": template}})

    async def running_pods() -> list[Any]:
        pods = (await core.list_namespaced_pod(namespace)).items
        return [p for p in pods if p.status.phase == "Running"]

    [first] = await eventually(running_pods, 90, "the spot pod Running", vk_node)
    group = group_of(emulator_realtime, first.metadata.uid)
    assert group.placed.spot_strategy == "SpotAsPriceGo"
    assert await metric(vk_node, "vk_eci_spot_preemptions_total") == 0
    emulator_realtime.preempt(group.id)

    async def failed() -> Any:
        pod = await core.read_namespaced_pod(first.metadata.name, namespace)
        return pod if pod.status.phase == "Failed" else None

    pod = await eventually(failed, 60, "the preempted pod Failed", vk_node)
    assert pod.status.reason == "SpotPreempted"
    assert group.id in pod.status.message
    disruption = {c.type: c for c in pod.status.conditions}["DisruptionTarget"]
    assert disruption.status == "True" and disruption.reason == "TerminationByKubelet"
    [cs] = pod.status.container_statuses
    assert cs.state.terminated is not None and cs.state.terminated.exit_code == 137

    async def warning() -> Any:
        return (await reasons(core, namespace, first.metadata.name)).get("SpotToBeReleased")

    [event] = await eventually(warning, 30, "ECI's SpotToBeReleased copied as a Warning",
                               vk_node)
    assert event.type == "Warning" and "3 minutes" in event.message
    # The warning came before the release, as ECI gives it.
    assert group.events[-1].reason == "SpotToBeReleased"
    assert group.placed.expire_at is not None
    assert group.events[-1].first < group.placed.expire_at

    async def replaced() -> Any:
        return [p for p in await running_pods() if p.metadata.uid != first.metadata.uid]

    [new] = await eventually(replaced, 90, "a replacement pod Running", vk_node)
    assert new.metadata.owner_references[0].kind == "ReplicaSet"
    assert await metric(vk_node, "vk_eci_spot_preemptions_total") == 1
    assert request_of(emulator_realtime, new.metadata.uid)["SpotStrategy"] == "SpotAsPriceGo"


async def test_job_ignores_a_preemption_through_its_pod_failure_policy(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    # backoffLimit 0: any counted failure would fail the Job. The DisruptionTarget condition of
    # a preempted pod lets the Job's podFailurePolicy ignore it and start the pod again.
    batch = client.BatchV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    template = spot_template(vk_node, restartPolicy="Never")
    await batch.create_namespaced_job(namespace, {
        "metadata": {"name": "train"},
        "spec": {"backoffLimit": 0, "template": template,
                 "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [
                     {"type": "DisruptionTarget", "status": "True"}]}]}}})

    async def running() -> list[Any]:
        pods = (await core.list_namespaced_pod(namespace)).items
        return [p for p in pods if p.status.phase == "Running"]

    [first] = await eventually(running, 90, "the Job's spot pod Running", vk_node)
    emulator_realtime.preempt(group_of(emulator_realtime, first.metadata.uid).id)

    async def restarted() -> Any:
        return [p for p in await running() if p.metadata.uid != first.metadata.uid]

    await eventually(restarted, 90, "the Job's pod started again after the preemption",
                     vk_node)
    failed = await core.read_namespaced_pod(first.metadata.name, namespace)
    assert failed.status.phase == "Failed" and failed.status.reason == "SpotPreempted"
    job = await batch.read_namespaced_job("train", namespace)
    assert not job.status.failed  # ignored, not counted against backoffLimit
    assert not [c for c in job.status.conditions or [] if c.type == "Failed"]


async def test_gpu_arm_and_ephemeral_storage_pods_schedule_only_where_the_node_has_them(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    arm = await node_factory(architecture="arm64")
    selector = {"type": "virtual-kubelet"}
    gpu_pod = pod_body("train", {K + "eci-use-specs": "ecs.gn6i-c4g1.xlarge"},
                       nodeSelector=selector, tolerations=TOLERATE)
    gpu_pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    disk_pod = pod_body("scratch", {K + "eci-extra-ephemeral-storage": "60Gi"},
                        nodeSelector={"kubernetes.io/hostname": arm.name},
                        tolerations=TOLERATE)
    disk_pod["spec"]["containers"][0]["resources"] = {
        "requests": {"ephemeral-storage": "40Gi"}}
    arm_pod = pod_body("arm", nodeSelector={"kubernetes.io/arch": "arm64"},
                       tolerations=TOLERATE)
    await core.create_namespaced_pod(namespace, gpu_pod)
    disk_created = await core.create_namespaced_pod(namespace, disk_pod)
    arm_created = await core.create_namespaced_pod(namespace, arm_pod)

    async def unschedulable() -> Any:
        return [e for e in (await reasons(core, namespace, "train")).get("FailedScheduling", [])
                if "nvidia.com/gpu" in e.message]

    await eventually(unschedulable, 60, "FailedScheduling for want of nvidia.com/gpu", arm)

    async def placed(name: str, node: str) -> bool:
        pod = await core.read_namespaced_pod(name, namespace)
        return pod.spec.node_name == node and pod.status.phase == "Running"

    await eventually(lambda: placed("scratch", arm.name), 60, "ephemeral-storage pod Running",
                     arm)
    await eventually(lambda: placed("arm", arm.name), 60, "arm64 pod Running", arm)
    assert request_of(emulator_realtime, arm_created.metadata.uid)["CpuArchitecture"] == "ARM64"
    assert request_of(emulator_realtime, disk_created.metadata.uid)["EphemeralStorage"] == "60"
    assert group_of(emulator_realtime, disk_created.metadata.uid).raw["EphemeralStorage"] == "60"
    assert (await core.read_namespaced_pod("train", namespace)).spec.node_name is None

    gpu = await node_factory(gpu="2", single_tenant=True)  # the GPU type needs no allowance
    await eventually(lambda: placed("train", gpu.name), 90, "GPU pod Running on the GPU node",
                     gpu)
    train = await core.read_namespaced_pod("train", namespace)
    req = request_of(emulator_realtime, train.metadata.uid)
    assert req["InstanceType"] == "ecs.gn6i-c4g1.xlarge" and req["Container.1.Gpu"] == "1"
    assert req["CpuArchitecture"] == "AMD64"
    group = group_of(emulator_realtime, train.metadata.uid)
    assert (group.cpu, group.memory) == (4, 15)
    node = await core.read_node(gpu.name)
    assert node.status.allocatable["nvidia.com/gpu"] == "2"
    assert node.metadata.labels["kubernetes.io/arch"] == "amd64"
    assert (await core.read_node(arm.name)).metadata.labels["kubernetes.io/arch"] == "arm64"
