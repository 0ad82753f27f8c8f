"""The virtual node registers itself, renews its Lease while ECI answers, and goes NotReady
(and back) when ECI stops (and resumes) answering. Real control plane, emulator, node process."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually

pytestmark = pytest.mark.integration


def ready_status(node: Any) -> str | None:
    for c in node.status.conditions or []:
        if c.type == "Ready":
            return str(c.status)
    return None


async def test_node_ready_with_labels_taint_capacity_and_renewing_lease(
        vk_node: NodeProcess, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)

    async def ready() -> Any:
        n = await core.read_node(vk_node.name)
        return n if ready_status(n) == "True" else None

    n = await eventually(ready, 60, "node Ready", vk_node)
    labels = n.metadata.labels
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/hostname"] == vk_node.name
    assert labels["topology.kubernetes.io/region"] == "cn-hangzhou"
    assert labels["topology.kubernetes.io/zone"] == "cn-hangzhou-h"
    assert [(t.key, t.value, t.effect) for t in n.spec.taints if t.key.startswith("virtual")] == [
        ("virtual-kubelet.io/provider", "alibabacloud", "NoSchedule")]
    # The API server may canonicalise 1000 as 1k; ephemeral storage is advertised too.
    assert n.status.capacity in (
        {"cpu": "1k", "memory": "4Ti", "pods": "1k", "ephemeral-storage": "40Ti"},
        {"cpu": "1000", "memory": "4Ti", "pods": "1000", "ephemeral-storage": "40Ti"})
    # The fixture gives each node a free kubelet API port (default 10250 in production).
    kubelet_port = int(vk_node.argv[vk_node.argv.index("--kubelet-port") + 1])
    assert n.status.daemon_endpoints.kubelet_endpoint.port == kubelet_port
    assert {c.type for c in n.status.conditions} >= {
        "Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}
    assert n.status.node_info.kubelet_version.endswith("-vk-eci-0.1.0")

    coord = client.CoordinationV1Api(kube_api)
    lease = await coord.read_namespaced_lease(vk_node.name, "kube-node-lease")
    assert lease.spec.holder_identity == vk_node.name
    assert lease.spec.lease_duration_seconds == 40
    assert lease.metadata.owner_references[0].kind == "Node"
    first = lease.spec.renew_time

    async def renewed() -> bool:
        again = await coord.read_namespaced_lease(vk_node.name, "kube-node-lease")
        return bool(again.spec.renew_time > first)

    await eventually(renewed, 15, "lease renewed", vk_node)

    async with aiohttp.ClientSession() as http, \
            http.get(vk_node.metrics_url) as resp:
        text = await resp.text()
    assert "vk_eci_node_ready 1.0" in text
    assert 'vk_eci_eci_api_requests_total{action="DescribeRegions",code="OK"}' in text


async def test_condition_added_by_others_survives_status_updates(
        vk_node: NodeProcess, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    await eventually(lambda: _is_ready(core, vk_node.name), 60, "node Ready", vk_node)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await core.patch_node_status(vk_node.name, {"status": {"conditions": [
        {"type": "example.com/Custom", "status": "True", "reason": "Test", "message": "x",
         "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
    # Restart the node: registration (adoption) and status writes must keep the condition.
    await vk_node.stop()
    await vk_node.start()
    await asyncio.sleep(6)
    await eventually(lambda: _is_ready(core, vk_node.name), 60, "node Ready again", vk_node)
    n = await core.read_node(vk_node.name)
    assert "example.com/Custom" in {c.type for c in n.status.conditions}


async def _is_ready(core: client.CoreV1Api, name: str) -> bool:
    return ready_status(await core.read_node(name)) == "True"


async def test_not_ready_while_eci_unreachable_and_ready_after(
        vk_node: NodeProcess, kube_api: client.ApiClient, emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    coord = client.CoordinationV1Api(kube_api)
    await eventually(lambda: _is_ready(core, vk_node.name), 60, "node Ready", vk_node)
    await eventually(lambda: coord.read_namespaced_lease(vk_node.name, "kube-node-lease"), 30,
                     "lease created", vk_node)
    emulator_realtime.faults.pause()
    try:
        async def not_ready() -> Any:
            n = await core.read_node(vk_node.name)
            return n if ready_status(n) in ("False", "Unknown") else None

        # Well within the 40 s lease: the node says so itself after two failed health calls.
        n = await eventually(not_ready, 30, "node NotReady", vk_node)
        reasons = {c.type: c.reason for c in n.status.conditions}
        assert reasons["Ready"] in ("EciUnreachable", "NodeStatusUnknown")
        frozen = (await coord.read_namespaced_lease(vk_node.name, "kube-node-lease")).spec
        await asyncio.sleep(5)
        later = (await coord.read_namespaced_lease(vk_node.name, "kube-node-lease")).spec
        assert later.renew_time == frozen.renew_time, "lease renewed while ECI was down"
    finally:
        emulator_realtime.faults.resume()
    await eventually(lambda: _is_ready(core, vk_node.name), 30, "node Ready again", vk_node)
