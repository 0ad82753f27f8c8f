"""Leader election on a real Lease: one holder, takeover only after expiry or release."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client

from vk_eci.cluster.kube.leader import LeaderElector

pytestmark = pytest.mark.integration


def elector(api: Any, lease: str, identity: str) -> LeaderElector:
    return LeaderElector(api, lease, "kube-system", identity, lease_duration=3,
                         renew_deadline=2, retry_period=0.25)


async def test_one_holder_and_takeover_only_after_expiry(kube_api: Any) -> None:
    lease = f"leader-test-{uuid.uuid4().hex[:6]}"
    a, b = elector(kube_api, lease, "node-a"), elector(kube_api, lease, "node-b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    stored = await client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, "kube-system")
    assert stored.spec.holder_identity == "node-a" and stored.spec.lease_duration_seconds == 3
    # a renews for a while: b never gets it.
    for _ in range(8):
        await asyncio.sleep(0.5)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    # a "crashes" (stops renewing, no release): b waits out the duration as b observed it.
    loop = asyncio.get_running_loop()
    crashed = loop.time()
    for _ in range(40):
        if await b.try_acquire_or_renew():
            break
        await asyncio.sleep(0.25)
    assert loop.time() - crashed >= 2.5
    assert not await a.try_acquire_or_renew()
    stored = await client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, "kube-system")
    assert stored.spec.holder_identity == "node-b" and stored.spec.lease_transitions == 1


async def test_run_stops_work_on_cancel_and_releases(kube_api: Any) -> None:
    lease = f"leader-test-{uuid.uuid4().hex[:6]}"
    a, b = elector(kube_api, lease, "node-a"), elector(kube_api, lease, "node-b")
    started: list[str] = []
    stopped: list[str] = []

    def work(name: str) -> Any:
        async def body() -> None:
            started.append(name)
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(name)
        return body

    task_a = asyncio.create_task(a.run(work("a")))
    for _ in range(40):
        if a.is_leader:
            break
        await asyncio.sleep(0.1)
    assert a.is_leader and started == ["a"]
    task_b = asyncio.create_task(b.run(work("b")))
    await asyncio.sleep(1.0)
    assert not b.is_leader and started == ["a"]
    loop = asyncio.get_running_loop()
    released = loop.time()
    task_a.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task_a
    assert stopped == ["a"]
    for _ in range(40):
        if b.is_leader:
            break
        await asyncio.sleep(0.1)
    # Released, so b did not wait out the 3 s duration.
    assert b.is_leader and started == ["a", "b"] and loop.time() - released < 2.0
    task_b.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task_b
    assert stopped == ["a", "b"]
