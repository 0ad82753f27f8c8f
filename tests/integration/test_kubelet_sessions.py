"""Attack: a flood of ``kubectl logs -f`` through the real API server against a running node
(``vk-eci run`` subprocess, ECI emulator through the official SDK). The node must refuse the
sessions over its caps with a clear 429, keep each follow poll to one group description, and
keep syncing pod status: a pod created during the flood still reaches Running in time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, eventually

pytestmark = pytest.mark.integration
FOLLOWS = 8  # sessions attempted; the node allows 3 in the namespace
WINDOW = 6.0  # seconds of flood over which ECI calls are counted


def pod(name: str, node: str, script: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        node_name=node, containers=[client.V1Container(
            name="main", image="busybox:1.36", command=["sh", "-c", script])]))


async def test_follow_flood_is_capped_and_status_sync_keeps_working(
        node_factory: NodeFactory, control_plane: Any, kube_api: client.ApiClient,
        namespace: str, emulator_realtime: Any) -> None:
    node = await node_factory(kubelet_max_sessions="6", kubelet_max_sessions_per_namespace="3")
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod(
        "chatty", node.name, "echo tick; sleep infinity"))

    async def phase(name: str) -> str | None:
        p = await core.read_namespaced_pod(name, namespace)
        return p.status.phase if p.status else None

    await eventually(lambda: _is(phase("chatty"), "Running"), 60, "chatty Running", node)

    async def follow() -> Any:
        """``GET …/pods/chatty/log?follow=true`` through the API server (what kubectl logs -f
        sends): the open response (its status is the node's answer, passed on)."""
        return await core.read_namespaced_pod_log("chatty", namespace, follow=True,
                                                  _preload_content=False)

    answers = await asyncio.gather(*(follow() for _ in range(FOLLOWS)))
    try:
        refused = [a for a in answers if a.status != 200]
        streaming = [a for a in answers if a.status == 200]
        # Exactly the namespace's cap is served; the rest is refused with 429 naming the cap.
        assert len(streaming) == 3, [a.status for a in answers]
        assert {r.status for r in refused} == {429}
        for r in refused:
            status = await r.json()  # the API server words the message itself
            assert (status["reason"], status["code"]) == ("TooManyRequests", 429), status
            r.close()
        # Prometheus shows the refusals by cap and the open sessions.
        async with aiohttp.ClientSession() as http, http.get(node.metrics_url) as resp:
            scraped = await resp.text()
        assert 'vk_eci_kubelet_sessions_refused_total{cap="namespace"} 5.0' in scraped
        assert "vk_eci_kubelet_sessions 3.0" in scraped
        # The node's log names the cap that refused them.
        assert node.logs().count(f"namespace '{namespace}' already has 3 open sessions") \
            == FOLLOWS - 3
        for response in streaming:
            line = await asyncio.wait_for(response.content.readline(), 20)
            assert line == b"tick\n"

        # During the flood: a new pod still gets created and reported Running promptly.
        before = _count(emulator_realtime, "DescribeContainerGroups")
        logs_before = _count(emulator_realtime, "DescribeContainerLog")
        started = time.monotonic()
        await core.create_namespaced_pod(namespace, pod("late", node.name, "sleep infinity"))
        await eventually(lambda: _is(phase("late"), "Running"), 30, "late Running", node)
        took = time.monotonic() - started
        await asyncio.sleep(max(0.0, WINDOW - took))
        polls = _count(emulator_realtime, "DescribeContainerLog") - logs_before
        describes = _count(emulator_realtime, "DescribeContainerGroups") - before
        # Sessions on one pod share one description per poll, and status sync's own calls
        # come on top: well under the 2 descriptions per log poll it used to cost.
        assert polls >= 3, polls
        assert describes < 1.5 * polls, (describes, polls)
        print(f"late pod Running after {took:.2f} s; {polls} log polls, {describes} "
              f"DescribeContainerGroups in {max(took, WINDOW):.1f} s")
    finally:
        for response in streaming:
            response.close()
    # The sessions of the clients that left are released: a new follow is served again.
    async def served() -> bool:
        answer = await follow()
        if answer.status != 200:
            answer.close()
            return False
        try:
            return bool(await asyncio.wait_for(answer.content.readline(), 20) == b"tick\n")
        finally:
            answer.close()

    await eventually(served, 20, "a follow accepted after the others closed", node)


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


def _count(emu: Any, action: str) -> int:
    return len(emu.recorded(action))
