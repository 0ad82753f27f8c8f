"""docs/SECURITY.md, item 3: a cluster never touches another cluster's container groups.

Two real clusters (the session's control plane and a second one started here, each with its
own ``kube-system`` namespace) share one ECI account (one emulator) and run a virtual node of
the same name, neither given ``--cluster-name`` (the chart's default). Each runs a pod; each
node is then restarted, and its start-up reconciliation must leave the other cluster's group
alone. Before the name was derived, both tagged ``default`` and the restarted node deleted the
other's group as an orphan. Also: the upgrade of a node from that old default (its groups
tagged ``default``): it adopts its own pods' groups and leaves a same-tagged group of another
cluster alone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from alibabacloud_eci20180808 import models as m
from kubernetes_asyncio import client, config

from tests.fixtures.node import (
    NodeFactory,
    NodeProcess,
    eventually,
    free_port,
    node_command,
    node_env,
)
from tests.integration.test_chart_node import sa_kubeconfig
from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.controlplane import cluster
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration


def _eci(emu: Emulator) -> EciClient:
    return EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                     endpoint=emu.endpoint, protocol="http",
                                     default_rate_limit=None))


def _pod(name: str, node: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        node_name=node, automount_service_account_token=False,
        containers=[client.V1Container(name="main", image="busybox:1.36",
                                       command=["sh", "-c", "sleep infinity"])]))


@pytest_asyncio.fixture
async def other_cluster(tmp_path: Path) -> AsyncIterator[cluster.ControlPlane]:
    """A second cluster: its own etcd, API server and controllers, hence its own kube-system
    namespace UID (on loopback; its node is reached by nothing but its own API client)."""
    directory = tmp_path / "other-cluster"
    cp = await asyncio.to_thread(cluster.up, directory)
    try:
        yield cp
    finally:
        await asyncio.to_thread(cluster.down, directory)


async def _api(cp: cluster.ControlPlane) -> client.ApiClient:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cp.kubeconfig),
                                  client_configuration=configuration)
    return client.ApiClient(configuration)


async def _run_pod(core: client.CoreV1Api, namespace: str, name: str, node: NodeProcess) -> Any:
    async def created() -> bool:
        await core.create_namespaced_pod(namespace, _pod(name, node.name))
        return True
    # A new namespace's default ServiceAccount may not exist yet (admission refuses).
    await eventually(created, 30, f"pod {name} created")

    async def running() -> Any:
        pod = await core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase == "Running" else None
    return await eventually(running, 60, f"pod {name} Running", node)


async def _reconciled(node: NodeProcess) -> None:
    """Wait for the node's start-up reconciliation after its latest start."""
    async def done() -> bool:
        return "start-up reconciliation:" in node.logs().rsplit("--- start ", 1)[-1]
    await eventually(done, 60, "start-up reconciliation", node)


def _cluster_tag(group: Any) -> str | None:
    return next((t.value for t in group.tags or [] if t.key == naming.TAG_CLUSTER), None)


async def test_two_clusters_with_the_same_node_name_never_delete_each_others_groups(
        node_factory: NodeFactory, control_plane: cluster.ControlPlane,
        kube_api: client.ApiClient, namespace: str, emulator_realtime: Emulator,
        other_cluster: cluster.ControlPlane, tmp_path: Path) -> None:
    name = f"vk-shared-{uuid.uuid4().hex[:6]}"
    node_a = await node_factory(node_name=name, cluster_name=False)
    port = free_port()
    node_b = NodeProcess(name=name, env=node_env(), log_path=tmp_path / "node-b.log",
                         metrics_port=port, argv=node_command(
                             other_cluster.kubeconfig, emulator_realtime.endpoint, name, port,
                             cluster_name=False))
    api_b = await _api(other_cluster)
    core_a, core_b = client.CoreV1Api(kube_api), client.CoreV1Api(api_b)
    await node_b.start()
    try:
        ns_b = f"t-{uuid.uuid4().hex[:8]}"
        await core_b.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns_b)))
        pod_a = await _run_pod(core_a, namespace, "a-0", node_a)
        pod_b = await _run_pod(core_b, ns_b, "b-0", node_b)
        eci = _eci(emulator_realtime)
        [group_a] = await eci.describe_container_groups(
            tags={naming.TAG_POD_UID: pod_a.metadata.uid})
        [group_b] = await eci.describe_container_groups(
            tags={naming.TAG_POD_UID: pod_b.metadata.uid})
        # A restart of either node reconciles only its own cluster's groups.
        for node, core, ns, pod in ((node_a, core_a, namespace, "a-0"),
                                    (node_b, core_b, ns_b, "b-0")):
            await node.restart()
            await _reconciled(node)
            deleted = {d["ContainerGroupId"]
                       for d in emulator_realtime.recorded("DeleteContainerGroup")}
            assert deleted == set(), f"{node.name} deleted {deleted} at start-up"
            assert len(emulator_realtime.recorded("CreateContainerGroup")) == 2
            assert (await core.read_namespaced_pod(pod, ns)).status.phase == "Running"
        for group in (group_a, group_b):
            [now] = await eci.describe_container_groups(ids=[group.container_group_id])
            assert now.status == "Running"
        # Each node named its cluster after its own kube-system namespace, and said so.
        for core, node, group in ((core_a, node_a, group_a), (core_b, node_b, group_b)):
            uid = (await core.read_namespace("kube-system")).metadata.uid
            assert _cluster_tag(group) == f"k8s-{uid}"
            assert f"cluster name 'k8s-{uid}' (derived" in node.logs()
        assert _cluster_tag(group_a) != _cluster_tag(group_b)
    finally:
        await node_b.stop()
        await api_b.close()


async def test_an_upgrade_from_the_old_default_name_adopts_only_its_own_pods_groups(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Emulator) -> None:
    """A node run as every version before this one ran by default (cluster ``default``)
    restarts without ``--cluster-name``: its pod keeps its group (re-tagged with the derived
    name, never re-created or marked Failed), and another cluster's group tagged ``default``
    with this node's name is left alone, named in a warning."""
    name = f"vk-upgrade-{uuid.uuid4().hex[:6]}"
    node = await node_factory(node_name=name, cluster_name=naming.LEGACY_CLUSTER)
    core = client.CoreV1Api(kube_api)
    pod = await _run_pod(core, namespace, "kept-0", node)
    eci = _eci(emulator_realtime)
    [mine] = await eci.describe_container_groups(tags={naming.TAG_POD_UID: pod.metadata.uid})
    assert _cluster_tag(mine) == naming.LEGACY_CLUSTER
    await node.kill()
    # Another cluster's group, made by an older node of the same name in the same account (for
    # a pod of the same namespace and name, even: only the UID tells them apart).
    foreign_tags = naming.pod_tags(naming.LEGACY_CLUSTER, name, namespace, "kept-0",
                                   str(uuid.uuid4()))
    foreign = await eci.create_container_group(m.CreateContainerGroupRequest(
        region_id="cn-hangzhou", container_group_name="other-cluster-pod",
        security_group_id="sg-1", v_switch_id="vsw-1",
        tag=[m.CreateContainerGroupRequestTag(key=k, value=v) for k, v in foreign_tags.items()],
        container=[m.CreateContainerGroupRequestContainer(
            name="main", image="busybox:1.36", cpu=1.0, memory=2.0,
            command=["sh", "-c", "sleep infinity"])]))

    at = node.argv.index("--cluster-name")
    del node.argv[at:at + 2]  # the upgrade: the chart no longer passes a name
    await node.start()
    await _reconciled(node)
    kube_system = (await core.read_namespace("kube-system")).metadata.uid
    [now] = await eci.describe_container_groups(ids=[mine.container_group_id])
    assert _cluster_tag(now) == f"k8s-{kube_system}"
    [other] = await eci.describe_container_groups(ids=[foreign])
    assert {t.key: t.value for t in other.tags} == foreign_tags
    assert emulator_realtime.recorded("DeleteContainerGroup") == []
    assert len(emulator_realtime.recorded("CreateContainerGroup")) == 2  # the pod's + foreign
    assert f"belong to no pod of this node ({foreign})" in node.logs()
    assert (await core.read_namespaced_pod("kept-0", namespace)).status.phase == "Running"

    # The adopted group is the node's own again: deleting the pod deletes it.
    await core.delete_namespaced_pod("kept-0", namespace)

    async def deleted() -> bool:
        return any(d["ContainerGroupId"] == mine.container_group_id
                   for d in emulator_realtime.recorded("DeleteContainerGroup"))
    await eventually(deleted, 30, "the adopted group deleted with its pod", node)
    assert all(d["ContainerGroupId"] != foreign
               for d in emulator_realtime.recorded("DeleteContainerGroup"))


async def test_a_node_that_may_not_read_kube_system_stops_with_one_clear_line(
        control_plane: cluster.ControlPlane, namespace: str, emulator_realtime: Emulator,
        tmp_path: Path) -> None:
    """No name given and no right to derive one: the node refuses to start (exit 2) saying
    what to grant or set, never falling back to a name another cluster may share."""
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    kubeconfig = await sa_kubeconfig(control_plane, namespace, "nobody", tmp_path)
    name = f"vk-noname-{uuid.uuid4().hex[:6]}"
    port = free_port()
    node = NodeProcess(name=name, env=node_env(), log_path=tmp_path / "node.log",
                       metrics_port=port, argv=node_command(
                           kubeconfig, emulator_realtime.endpoint, name, port,
                           cluster_name=False))
    node.argv[node.argv.index("--client-ca-file") + 1] = str(
        control_plane.dir / "pki" / "ca.crt")
    await node.start()
    assert node.proc is not None
    try:
        async with asyncio.timeout(60):
            code = await node.proc.wait()
    finally:
        await node.stop()
    logs = node.logs()
    assert code == 2, logs[-2000:]
    assert "cannot read namespace kube-system to derive one (403" in logs, logs[-2000:]
    assert "set --cluster-name" in logs
    assert emulator_realtime.recorded("CreateContainerGroup") == []
