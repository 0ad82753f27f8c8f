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

    # The API server does not proxy nodes/proxy to loopback, so call the node as it would,
    # with its kubelet client certificate.
    pki = control_plane.dir / "pki"
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(str(pki / "apiserver-kubelet-client.crt"),
                        str(pki / "apiserver-kubelet-client.key"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"https://127.0.0.1:{port}/stats/summary", ssl=ctx) as resp:
            assert resp.status == 200
            summary = json.loads(await resp.text())
        anonymous = ssl.create_default_context()
        anonymous.check_hostname, anonymous.verify_mode = False, ssl.CERT_NONE
        async with http.get(f"https://127.0.0.1:{port}/stats/summary", ssl=anonymous) as resp:
            assert resp.status == 401
    assert summary["node"]["nodeName"] == vk_node.name
    [pod] = summary["pods"]
    assert pod["podRef"]["name"] == "job" and pod["podRef"]["namespace"] == namespace
    assert pod["podRef"]["uid"] == (await core.read_namespaced_pod("job", namespace)).metadata.uid
    assert pod["cpu"]["usageNanoCores"] > 0
