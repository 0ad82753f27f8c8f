"""Pod status reaches the API server soon after ECI's transition, at ECI's cost.

The node runs as a subprocess against the real control plane and the emulator on a fast real
clock. The lag is read from the node's own ``vk_eci_pod_status_lag_seconds`` histogram, which
measures from ECI's transition timestamps (an upper bound), never from this test's clock.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, NodeProcess, eventually
from tests.integration.test_node_pods import eci_calls, pod_body

pytestmark = pytest.mark.integration
LAG = "vk_eci_pod_status_lag_seconds"


async def lag_buckets(node: NodeProcess, phase: str) -> dict[str, float]:
    """``le`` -> cumulative count of the lag histogram for ``phase``, plus ``sum``."""
    async with aiohttp.ClientSession() as http, \
            http.get(node.metrics_url) as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(f'{LAG}_bucket{{') and f'phase="{phase}"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(f'{LAG}_sum{{phase="{phase}"}}'):
            out["sum"] = float(line.rsplit(" ", 1)[1])
    return out


async def phase_of(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    pod = await core.read_namespaced_pod(name, ns)
    return pod.status.phase if pod.status else None


async def test_status_change_reaches_api_server_within_1_5s(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body("svc", vk_node.name, ["sleep", "3600"]))
    # 300 s of work at the emulator's 0.01 time scale: Succeeded 3 s after it starts.
    await core.create_namespaced_pod(namespace, pod_body(
        "job", vk_node.name, ["sh", "-c", "sleep 300; exit 0"], restartPolicy="Never"))

    async def done() -> bool:
        return (await phase_of(core, namespace, "svc") == "Running"
                and await phase_of(core, namespace, "job") == "Succeeded")

    await eventually(done, 90, "svc Running and job Succeeded", vk_node)
    # (Pending may be skipped: at this time scale a group can be Running by the first poll.)
    pending = await lag_buckets(vk_node, "Pending")
    assert pending.get("1.5") == pending.get("+Inf"), pending
    for phase, pods in (("Running", 2), ("Succeeded", 1)):
        buckets = await eventually(lambda p=phase: lag_buckets(vk_node, p), 10,
                                   f"{phase} lag observed", vk_node)
        assert buckets["+Inf"] == pods, (phase, buckets)
        # Every observation of the phase is within 1.5 s of ECI's transition...
        assert buckets["1.5"] == buckets["+Inf"], (phase, buckets)
        # ...and is a real measurement, not a zero written for want of a timestamp.
        assert 0 < buckets["sum"] < 1.5 * pods, (phase, buckets)
    # Changes were found by polling what changed, not by listing everything each second. Over
    # the next ten polls a full-listing node lists ten times; this one reads groups only for the
    # follow-ups of the changes above (at most two per group, cloud.groups.follow) and at most
    # one resync listing (a minute apart): five calls at most, however slow the machine.
    polls = await eci_calls(vk_node, "DescribeContainerGroupStatus")
    assert polls >= 3
    reads = await eci_calls(vk_node, "DescribeContainerGroups")

    async def ten_more_polls() -> bool:
        return await eci_calls(vk_node, "DescribeContainerGroupStatus") >= polls + 10

    await eventually(ten_more_polls, 60, "ten more polls", vk_node)
    more_reads = await eci_calls(vk_node, "DescribeContainerGroups") - reads
    assert more_reads <= 5, more_reads


async def test_full_listing_mode_still_works(node_factory: NodeFactory,
                                             kube_api: client.ApiClient,
                                             namespace: str) -> None:
    node = await node_factory(status_sync_mode="full")
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body("old", node.name, ["sleep", "3600"]))

    async def running() -> bool:
        return await phase_of(core, namespace, "old") == "Running"

    await eventually(running, 60, "Running in full-listing mode", node)
    assert await eci_calls(node, "DescribeContainerGroupStatus") == 0
    assert await eci_calls(node, "DescribeContainerGroups") >= 2
    assert (await lag_buckets(node, "Running"))["+Inf"] == 1
