"""docs/SECURITY.md, item 1: a pod reaches only its own container group.

The attack: a tenant who owns namespace ``<ns>-prod`` creates pod ``db-0``, the twin of the
victim's ``<ns>``/``prod-db-0`` (both once got the group name ``<ns>-prod-db-0``), and reads
the victim's logs or runs commands in it with ``kubectl exec`` through the real API server and
the node (``vk-eci run``). Also: groups made under the older naming are still found by their
tags, and a group whose tags name another pod (or another UID) is never taken.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually
from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.errors import NotFound
from vk_eci.cloud.pod_io import EciPodIO
from vk_eci.emulator import Emulator
from vk_eci.provider import LogOptions

pytestmark = pytest.mark.integration


def _eci(emu: Emulator) -> EciClient:
    return EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                     endpoint=emu.endpoint, protocol="http",
                                     default_rate_limit=None))


def _pod(name: str, node: str, script: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        node_name=node, containers=[client.V1Container(
            name="db", image="busybox:1.36", command=["sh", "-c", script])]))


async def test_a_twin_pod_in_another_namespace_never_reaches_the_victims_group(
        vk_node: NodeProcess, control_plane: Any, kube_api: client.ApiClient,
        namespace: str, emulator_realtime: Emulator) -> None:
    core = client.CoreV1Api(kube_api)
    victim_ns, attacker_ns = namespace, f"{namespace}-prod"
    await core.create_namespace(client.V1Namespace(
        metadata=client.V1ObjectMeta(name=attacker_ns)))
    try:
        # The attacker's pod first, so that the victim's group is the newer of the two.
        await core.create_namespaced_pod(attacker_ns, _pod(
            "db-0", vk_node.name, "echo attacker; sleep infinity"))

        async def running(ns: str, name: str) -> bool:
            pod = await core.read_namespaced_pod(name, ns)
            return pod.status.phase == "Running"

        await eventually(lambda: running(attacker_ns, "db-0"), 60, "attacker Running", vk_node)
        await core.create_namespaced_pod(victim_ns, _pod(
            "prod-db-0", vk_node.name, "echo victim-secret; sleep infinity"))
        await eventually(lambda: running(victim_ns, "prod-db-0"), 60, "victim Running",
                         vk_node)
        eci = _eci(emulator_realtime)
        [victim] = await eci.describe_container_groups(tags={naming.TAG_NAMESPACE: victim_ns})
        [attacker] = await eci.describe_container_groups(
            tags={naming.TAG_NAMESPACE: attacker_ns})

        async def logs(ns: str, name: str) -> Any:
            out = await asyncio.to_thread(control_plane.kubectl, "logs", "-n", ns, name,
                                          check=False)
            return out if out.returncode == 0 and out.stdout else None

        out = await eventually(lambda: logs(attacker_ns, "db-0"), 30, "attacker logs", vk_node)
        assert out.stdout == "attacker\n"
        out = await eventually(lambda: logs(victim_ns, "prod-db-0"), 30, "victim logs", vk_node)
        assert out.stdout == "victim-secret\n"

        before = len(emulator_realtime.recorded("ExecContainerCommand"))
        out = await asyncio.to_thread(control_plane.kubectl, "exec", "-n", attacker_ns, "db-0",
                                      "--", "echo", "hi")
        assert out.stdout == "hi\n"
        execs = emulator_realtime.recorded("ExecContainerCommand")[before:]
        assert [e["ContainerGroupId"] for e in execs] == [attacker.container_group_id]
        assert victim.container_group_name != attacker.container_group_name
    finally:
        await asyncio.to_thread(control_plane.kubectl, "delete", "namespace", attacker_ns,
                                "--wait=false", check=False)


async def test_groups_are_found_by_their_tags_never_by_their_name(
        emulator_realtime: Emulator) -> None:
    """An older node's group (``<ns>-<name>`` kept as is) is still the pod's; a group of the
    same name whose tags name another pod, or the pod's previous UID, is never taken."""
    eci = _eci(emulator_realtime)
    cluster, node = "c-tags", "vk-tags"
    uid = str(uuid.uuid4())

    async def group(name: str, ns: str, pod: str, pod_uid: str, echo: str) -> str:
        return await eci.create_container_group(m.CreateContainerGroupRequest(
            region_id="cn-hangzhou", container_group_name=name, security_group_id="sg-1",
            v_switch_id="vsw-1",
            tag=[m.CreateContainerGroupRequestTag(key=k, value=v) for k, v in
                 naming.pod_tags(cluster, node, ns, pod, pod_uid).items()],
            container=[m.CreateContainerGroupRequestContainer(
                name="db", image="busybox:1.36", cpu=1.0, memory=2.0,
                command=["sh", "-c", f"echo {echo}; sleep infinity"])]))

    mine = await group("team-prod-db-0", "team", "prod-db-0", uid, "mine")  # older naming
    await group("team-prod-db-0", "team-prod", "db-0", str(uuid.uuid4()), "twin")
    await group("team-prod-db-0", "team", "prod-db-0", str(uuid.uuid4()), "old-uid")
    uids = {("team", "prod-db-0"): uid}
    pod_io = EciPodIO(eci, cluster_name=cluster, node_name=node,
                      pod_uid=lambda ns, name: uids.get((ns, name)))

    async def started() -> bool:
        return await pod_io.container_state("team", "prod-db-0", "db") == "Running"

    await eventually(started, 30, "the pod's container Running")
    text = await pod_io.container_logs("team", "prod-db-0", "db", LogOptions())
    assert text == "mine\n"
    assert pod_io._ids[("team", "prod-db-0")][1] == mine
    # The twin's pod is no pod of this node: nothing, even though a group of its name exists.
    with pytest.raises(NotFound):
        await pod_io.container_logs("team-prod", "db-0", "db", LogOptions())
    # Without a known UID (no informer), namespace and name tags still keep the twin out.
    blind = EciPodIO(eci, cluster_name=cluster, node_name=node)

    async def twin_logged() -> bool:
        # The twin was created after "mine" and may start later on a busy machine.
        return await blind.container_logs("team-prod", "db-0", "db", LogOptions()) == "twin\n"

    await eventually(twin_logged, 30, "the twin's own log through namespace and name tags")
