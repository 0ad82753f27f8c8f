"""The kubelet API of a running node (``vk-eci run`` subprocess): ``kubectl logs``, ``kubectl
exec`` and the stats endpoints, with the node's own Node object, pods and ECI groups."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually

pytestmark = pytest.mark.integration


async def kubectl(cp: Any, *args: str, check: bool = True) -> Any:
    return await asyncio.to_thread(cp.kubectl, *args, check=check)


async def test_kubectl_logs_exec_and_stats_against_the_node(
        vk_node: NodeProcess, control_plane: Any, kube_api: client.ApiClient,
        namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="job"),
        spec=client.V1PodSpec(node_name=vk_node.name, containers=[client.V1Container(
            name="main", image="busybox:1.36",
            command=["sh", "-c", "echo started; echo ready; sleep infinity"])])))

    async def running() -> bool:
        pod = await core.read_namespaced_pod("job", namespace)
        return pod.status.phase == "Running"

    await eventually(running, 60, "pod Running", vk_node)
    node = await core.read_node(vk_node.name)
    port = node.status.daemon_endpoints.kubelet_endpoint.port

    async def logs() -> Any:
        out = await kubectl(control_plane, "logs", "-n", namespace, "job", check=False)
        return out if out.returncode == 0 and out.stdout else None

    out = await eventually(logs, 30, "kubectl logs answers", vk_node)
    assert out.stdout == "started\nready\n"
    out = await kubectl(control_plane, "logs", "-n", namespace, "job", "--tail=1")
    assert out.stdout == "ready\n"

    out = await kubectl(control_plane, "exec", "-n", namespace, "job", "--", "echo", "in", "eci")
    assert out.stdout == "in eci\n"

    # As `kubectl get --raw` users and metrics tools reach a kubelet: through the API server's
    # nodes/<name>/proxy, which dials the node's InternalIP (its routable node-network address).
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    assert internal == [vk_node.host] and vk_node.host != "127.0.0.1"
    raw = await kubectl(control_plane, "get", "--raw",
                        f"/api/v1/nodes/{vk_node.name}/proxy/stats/summary")
    summary = json.loads(raw.stdout)
    resource = (await kubectl(control_plane, "get", "--raw",
                              f"/api/v1/nodes/{vk_node.name}/proxy/metrics/resource")).stdout
    pod_line = f'pod_cpu_usage_seconds_total{{namespace="{namespace}",pod="job"}}'
    assert pod_line in resource and "node_cpu_usage_seconds_total " in resource, resource
    # The runtime's view that listing tools read, and the pods the node holds.
    running = json.loads((await kubectl(control_plane, "get", "--raw",
                                        f"/api/v1/nodes/{vk_node.name}/proxy/runningpods/")).stdout)
    [item] = running["items"]
    assert (item["metadata"]["namespace"], item["metadata"]["name"]) == (namespace, "job")
    assert [c["name"] for c in item["spec"]["containers"]] == ["main"]
    bound = json.loads((await kubectl(control_plane, "get", "--raw",
                                      f"/api/v1/nodes/{vk_node.name}/proxy/pods")).stdout)
    assert [p["metadata"]["name"] for p in bound["items"]] == ["job"]
    # And straight at the address: the kubelet API still wants a client certificate.
    anonymous = ssl.create_default_context()
    anonymous.check_hostname, anonymous.verify_mode = False, ssl.CERT_NONE
    async with aiohttp.ClientSession() as http, http.get(
            f"https://{vk_node.host}:{port}/stats/summary", ssl=anonymous) as resp:
        assert resp.status == 401
    assert summary["node"]["nodeName"] == vk_node.name
    [pod] = summary["pods"]
    assert pod["podRef"]["name"] == "job" and pod["podRef"]["namespace"] == namespace
    assert pod["podRef"]["uid"] == (await core.read_namespaced_pod("job", namespace)).metadata.uid
    assert pod["cpu"]["usageNanoCores"] > 0
