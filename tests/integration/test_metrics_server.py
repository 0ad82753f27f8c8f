"""metrics-server against the virtual node, as in a kind or minikube cluster: it scrapes the
node's ``/metrics/resource`` at its InternalIP, so ``kubectl top`` shows the ECI usage the
emulator reports, and an HPA on CPU scales a Deployment on the node when that usage rises."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration


async def kubectl(cp: Any, *args: str, check: bool = True) -> Any:
    return await asyncio.to_thread(cp.kubectl, *args, check=check)


def millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def resources(cpu: str, memory: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}


async def test_kubectl_top_shows_eci_usage_of_the_nodes_pods(
        metrics_server: Any, vk_node: NodeProcess, emulator_realtime: Emulator,
        kube_api: client.ApiClient, namespace: str) -> None:
    cp = metrics_server
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, {
        "metadata": {"name": "web"},
        "spec": {"nodeName": vk_node.name, "containers": [
            {"name": "main", "image": "nginx:1.25", "resources": resources("2", "4Gi")}]}})

    async def running() -> bool:
        pod = await core.read_namespaced_pod("web", namespace)
        return pod.status.phase == "Running"

    await eventually(running, 60, "pod Running", vk_node)
    uid = (await core.read_namespaced_pod("web", namespace)).metadata.uid
    [group] = [g for g in emulator_realtime.state.groups.values()
               if any(v == uid for _, v in g.tags)]
    emulator_realtime.set_cpu_load(0.35, [group.id])

    # metrics-server needs two scrapes of the cumulative counter for a rate.
    async def top_pod() -> Any:
        out = await kubectl(cp, "top", "pod", "-n", namespace, "--no-headers", check=False)
        return out.stdout.split() if out.returncode == 0 and out.stdout else None

    async def top_pod_loaded() -> Any:
        # Until two scrapes after the change, the rate still mixes in the default 10%.
        row = await top_pod()
        return row if row and abs(millicores(row[1]) - 700) <= 14 else None

    name, _cpu, memory = await eventually(top_pod_loaded, 90, "kubectl top pod shows 700m",
                                          vk_node)
    # What the emulator reports for the ECI group: 35% of 2 cores (a rate of ECI's cumulative
    # counter between two timestamps, so within 2%), 30% of 4 GiB working set.
    assert name == "web"
    assert memory == f"{int(4 * 1024 * 0.3)}Mi"

    async def top_node() -> Any:
        out = await kubectl(cp, "top", "node", vk_node.name, "--no-headers", check=False)
        return out.stdout.split() if out.returncode == 0 and out.stdout else None

    row = await eventually(top_node, 60, "kubectl top node answers", vk_node)
    # The node's usage is the sum of its pods' (one here).
    assert row[0] == vk_node.name and abs(millicores(row[1]) - 700) <= 14, row
    # The same figures through the API kubectl reads (metrics.k8s.io, served by aggregation).
    raw = await kubectl(cp, "get", "--raw",
                        f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/web")
    metrics = json.loads(raw.stdout)
    assert metrics["containers"][0]["name"] == "main"


async def test_hpa_scales_a_deployment_on_the_node_up_on_emulated_cpu(
        metrics_server: Any, vk_node: NodeProcess, emulator_realtime: Emulator,
        kube_api: client.ApiClient, namespace: str) -> None:
    cp = metrics_server
    apps = client.AppsV1Api(kube_api)
    await apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "api"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {
                     "nodeName": vk_node.name, "containers": [
                         {"name": "main", "image": "nginx:1.25",
                          "resources": resources("1", "2Gi")}]}}}})
    await kubectl(cp, "autoscale", "deployment", "api", "-n", namespace, "--min=1", "--max=3",
                  "--cpu=50%")

    async def utilization() -> Any:
        out = await kubectl(cp, "get", "hpa", "api", "-n", namespace, "-o", "json")
        metrics = json.loads(out.stdout).get("status", {}).get("currentMetrics") or []
        # Until metrics arrive the HPA lists an entry with no resource figures.
        current = metrics[0].get("resource", {}).get("current", {}) if metrics else {}
        return current.get("averageUtilization")

    # At rest the group reports 10% of its CPU: the HPA reads it (a rate between two samples,
    # floored to a whole percent, so 9 or 10) and keeps one replica.
    at_rest = await eventually(utilization, 120, "the HPA reads CPU utilization", vk_node)
    assert at_rest in (9, 10, 11), at_rest
    deployment = await apps.read_namespaced_deployment("api", namespace)
    assert deployment.spec.replicas == 1

    # Load: the ECI group of the one pod reports 90% of its CPU.
    loaded = emulator_realtime.set_cpu_load(0.9)
    assert loaded

    async def scaled() -> Any:
        got = await apps.read_namespaced_deployment("api", namespace)
        return got.spec.replicas if got.spec.replicas >= 2 else None

    replicas = await eventually(scaled, 120, "the HPA scales the Deployment up", vk_node)
    # ceil(1 replica * 90% / 50%) = 2; HPA events name the reason.
    assert replicas == 2
    events = await kubectl(cp, "get", "events", "-n", namespace, "--field-selector",
                           "involvedObject.kind=HorizontalPodAutoscaler", "-o", "json")
    messages = [e["message"] for e in json.loads(events.stdout)["items"]]
    assert any("New size: 2; reason: cpu resource utilization" in m for m in messages), messages
