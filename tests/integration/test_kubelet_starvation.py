"""Attack: as many ``kubectl logs -f`` as the session caps allow, through the
real API server, against a running node (``vk-eci run``) whose ECI account has a small
``DescribeContainerGroups`` quota that the emulator enforces (``Throttling.User`` beyond it).

The follows may be slowed down to their own share of the quota, but status sync keeps its
share: a pod created during the flood is reported Running promptly, and ECI never throttles
the node. Before the interactive budgets every follow poll (two DescribeContainerGroups per
session) waited in the same queue as status sync's, which then waited behind all of them.

The quota is ECI's 2,000 a minute scaled down 22 times (90), shared 1:1 by the node's two
budgets through ``--eci-rate-limits`` (the default split is 4:1; 1:1 keeps the test short):
each pod followed keeps one call waiting on the interactive budget at all times.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from tests.fixtures.emulator import emulator_host
from tests.fixtures.node import NodeFactory, eventually
from vk_eci.cloud.api.ratelimit import INTERACTIVE_MAX_WAITERS
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration
QUOTA = 90  # DescribeContainerGroups a minute for the whole account (the emulator's limit)
NODE_SHARE = INTERACTIVE_SHARE = 45  # the node's budgets: together exactly the quota
# One session per pod: sessions on one pod share their descriptions, so each pod followed is
# one more waiter on the interactive budget. 16 = the default per-namespace session cap.
PODS = 16
PROMPT = 6.0  # seconds: a status change must reach the API server within this
SETTLE = 3.0  # seconds of flood before the new pod is created


@pytest_asyncio.fixture
async def emulator_realtime(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """The ECI emulator with a small account quota on DescribeContainerGroups (other actions
    unlimited), used by ``node_factory`` in this module."""
    async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                        time_scale=0.01, host=emulator_host(request),
                        rate_limits={"DescribeContainerGroups": QUOTA}) as emu:
        yield emu


def pod(name: str, node: str, script: str) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        node_name=node, containers=[client.V1Container(
            name="main", image="busybox:1.36", command=["sh", "-c", script])]))


async def test_a_follow_flood_never_starves_status_sync_of_a_rate_limited_account(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Emulator) -> None:
    node = await node_factory(eci_rate_limits=(
        f"DescribeContainerGroups={NODE_SHARE},"
        f"DescribeContainerGroups@interactive={INTERACTIVE_SHARE}"))
    core = client.CoreV1Api(kube_api)

    async def running(name: str) -> bool:
        p = await core.read_namespaced_pod(name, namespace)
        return bool(p.status and p.status.phase == "Running")

    async def start(name: str, script: str = "echo tick; sleep infinity") -> float:
        """Seconds from create to Running as the API server shows it."""
        started = time.monotonic()
        await core.create_namespaced_pod(namespace, pod(name, node.name, script))
        await eventually(lambda: running(name), 90, f"{name} Running", node, every=0.2)
        return time.monotonic() - started

    await asyncio.gather(*(start(f"chatty-{i}") for i in range(PODS)))
    quiet = await start("quiet")

    async def follow(i: int) -> Any:
        return await core.read_namespaced_pod_log(f"chatty-{i}", namespace, follow=True,
                                                  _preload_content=False)

    # The node answers a follow's headers after its first description: open them all, and
    # while they and their polls wait for the interactive budget, create a new pod.
    opening = [asyncio.create_task(follow(i)) for i in range(PODS)]
    answers: list[Any] = []
    try:
        await asyncio.sleep(SETTLE)
        took = await asyncio.wait_for(start("late"), PROMPT + 20)
        assert took < PROMPT, f"late pod Running after {took:.1f} s (quiet: {quiet:.1f} s)"
        # The follows are slowed to their share, not shut out: every one of them streams.
        answers = list(await asyncio.wait_for(asyncio.gather(*opening), 90))
        assert [a.status for a in answers] == [200] * PODS
        lines = await asyncio.gather(*(asyncio.wait_for(a.content.readline(), 60)
                                       for a in answers))
        assert lines == [b"tick\n"] * PODS
    finally:
        for task in opening:
            task.cancel()
        for answer in answers:
            answer.close()
    # Both shares together stayed within the account's quota: ECI never throttled the node.
    async with aiohttp.ClientSession() as http, http.get(node.metrics_url) as resp:
        scraped = await resp.text()
    throttled = [line for line in scraped.splitlines()
                 if line.startswith("vk_eci_eci_api_requests_total") and "Throttling" in line]
    assert throttled == [], throttled
    print(f"quiet pod Running after {quiet:.2f} s; late pod during {PODS} follows after "
          f"{took:.2f} s")


async def test_interactive_callers_waiting_for_the_budget_are_bounded(
        node_factory: NodeFactory, control_plane: Any, kube_api: client.ApiClient,
        namespace: str) -> None:
    """Concurrent ``/runningpods/`` (a DescribeContainerGroups each, interactive budget) by a
    client certificate of the cluster CA: once the budget's waiting room (32) is full the next
    callers are refused at once with 503 naming the budget, instead of queueing without end;
    status sync is unaffected meanwhile."""
    node = await node_factory(eci_rate_limits="DescribeContainerGroups@interactive=6")
    core = client.CoreV1Api(kube_api)
    url = f"https://{node.host}:{node.argv[node.argv.index('--kubelet-port') + 1]}/runningpods/"
    pki_dir = control_plane.dir / "pki"
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    tls.load_cert_chain(str(pki_dir / "kubeconfig-client.crt"),
                        str(pki_dir / "kubeconfig-client.key"))
    callers = INTERACTIVE_MAX_WAITERS + 8
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def running_pods() -> tuple[int, str]:
            async with http.get(url, ssl=tls) as resp:
                return resp.status, await resp.text()

        async def listening() -> bool:
            try:
                async with http.get(url.replace("runningpods/", "healthz"), ssl=tls) as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(listening, 30, "the kubelet API listening", node)
        calls = [asyncio.create_task(running_pods()) for _ in range(callers)]
        try:
            done, waiting = await asyncio.wait(calls, timeout=5)
            answers = [t.result() for t in done]
            refused = [body for status, body in answers if status == 503]
            # 6 a minute holds one token: one answer, the waiting room full, the rest refused.
            assert len(refused) >= callers - INTERACTIVE_MAX_WAITERS - 2, answers
            assert len(waiting) >= INTERACTIVE_MAX_WAITERS - 1, len(waiting)
            for body in refused:
                assert "wait for the DescribeContainerGroups@interactive budget" in body, body
            # Meanwhile the node's own work goes on: a new pod is reported Running.
            started = time.monotonic()
            await core.create_namespaced_pod(namespace, pod("meanwhile", node.name,
                                                            "sleep infinity"))

            async def running() -> bool:
                p = await core.read_namespaced_pod("meanwhile", namespace)
                return bool(p.status and p.status.phase == "Running")

            await eventually(running, PROMPT, "a pod Running while the room is full", node)
            print(f"{len(refused)} refused at once, {len(waiting)} waiting; pod Running after "
                  f"{time.monotonic() - started:.2f} s")
        finally:
            for task in calls:
                task.cancel()
