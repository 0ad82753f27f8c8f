"""The node's pod lists as a Go tool reads them: client-go's REST client through the API server's
``nodes/NODE/proxy`` (``hack/runningpods-client``). client-go cleans a trailing slash away, so
``runningpods/`` reaches the node as ``/runningpods``; both spellings of both lists must answer,
with ``"items": []`` (never ``null``) when there is no pod."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually
from vk_eci.controlplane import runningpods_client

pytestmark = pytest.mark.integration

PATHS = ("runningpods/", "runningpods", "pods", "pods/")


async def go_get(control_plane: Any, node: str, path: str) -> dict[str, Any]:
    binary = await asyncio.to_thread(runningpods_client.ensure_built)
    done = await asyncio.to_thread(
        subprocess.run, [str(binary), str(control_plane.kubeconfig), node, path],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{path}: {done.stderr}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def test_go_client_lists_running_pods_through_the_api_server(
        vk_node: NodeProcess, control_plane: Any, kube_api: client.ApiClient,
        namespace: str) -> None:
    core = client.CoreV1Api(kube_api)

    async def registered() -> bool:   # the fixture returns once the process runs
        try:
            node = await core.read_node(vk_node.name)
        except client.ApiException:
            return False
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    await eventually(registered, 60, "node Ready", vk_node)
    for path in PATHS:
        assert await go_get(control_plane, vk_node.name, path) == {
            "rawItems": [], "names": []}, path

    await core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="job"),
        spec=client.V1PodSpec(node_name=vk_node.name, containers=[client.V1Container(
            name="main", image="busybox:1.36", command=["sleep", "infinity"])])))

    async def running() -> bool:
        pod = await core.read_namespaced_pod("job", namespace)
        return pod.status.phase == "Running"

    await eventually(running, 60, "pod Running", vk_node)
    for path in PATHS:
        answer = await go_get(control_plane, vk_node.name, path)
        assert answer["names"] == [f"{namespace}/job"], (path, answer)
