"""A finished pod whose group ECI has forgotten (ECI keeps an ended group 1 hour, then only the
last 100 of the region; the emulator's ``terminal_retention`` model, docs/EMULATOR.md): the pod
keeps its final status, and its logs answer that ECI no longer keeps the group."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually
from tests.integration.test_node_pods import live_groups, pod_body, pod_phase
from vk_eci.cloud.api import naming
from vk_eci.controlplane.state import ControlPlane
from vk_eci.emulator import EciModel

pytestmark = pytest.mark.integration


async def test_finished_pod_outlives_its_forgotten_group(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any, control_plane: ControlPlane) -> None:
    # Ended groups forgotten 60 s (0.6 s at time scale 0.01) after they end, none kept beyond.
    emulator_realtime.state.model = EciModel(terminal_keep_s=60, terminal_keep_count=0)
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body(
        "job", vk_node.name, ["sh", "-c", "echo done; exit 0"], restartPolicy="Never"))

    async def succeeded() -> bool:
        return await pod_phase(core, namespace, "job") == "Succeeded"

    await eventually(succeeded, 60, "job Succeeded", vk_node)

    def groups_of_job() -> list[Any]:
        return [g for g in live_groups(emulator_realtime)
                if dict(g.tags).get(naming.TAG_NAMESPACE) == namespace
                and dict(g.tags).get(naming.TAG_POD_NAME) == "job"]

    assert len(groups_of_job()) == 1

    async def forgotten() -> bool:
        return not groups_of_job()

    await eventually(forgotten, 60, "the job's group forgotten by the emulator", vk_node)
    await asyncio.sleep(5)   # several status cycles (1 s) and listings after the group went
    pod = await core.read_namespaced_pod("job", namespace)
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0

    out = await asyncio.to_thread(control_plane.kubectl, "logs", "-n", namespace, "job",
                                  check=False)
    assert out.returncode != 0
    assert "no longer kept by ECI" in out.stderr, out.stderr
