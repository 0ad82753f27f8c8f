"""vk_eci.cluster.pods.resources: service link variables as the kubelet makes them."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.pods.resources import KubePodResources, Shared, service_link_env
from vk_eci.provider import PodResources


def svc(name: str, ip: str | None, *ports: tuple[str | None, int, str]) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(cluster_ip=ip, ports=[
            client.V1ServicePort(name=n, port=p, protocol=proto) for n, p, proto in ports]))


def test_service_link_env() -> None:
    env = service_link_env(svc("redis-master", "10.0.0.11", ("db", 6379, "TCP"),
                               (None, 53, "UDP")))
    assert env["REDIS_MASTER_SERVICE_HOST"] == "10.0.0.11"
    assert env["REDIS_MASTER_SERVICE_PORT"] == "6379"
    assert env["REDIS_MASTER_SERVICE_PORT_DB"] == "6379"
    assert env["REDIS_MASTER_PORT"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["REDIS_MASTER_PORT_6379_TCP_PORT"] == "6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_ADDR"] == "10.0.0.11"
    assert env["REDIS_MASTER_PORT_53_UDP"] == "udp://10.0.0.11:53"


def test_headless_service_has_no_variables() -> None:
    assert service_link_env(svc("headless", "None", ("x", 80, "TCP"))) == {}
    assert service_link_env(svc("noip", None, ("x", 80, "TCP"))) == {}


def test_implements_the_protocol() -> None:
    assert isinstance(KubePodResources.__new__(KubePodResources), PodResources)


async def test_shared_reads_once_for_concurrent_callers_and_reuses_within_ttl() -> None:
    now = [100.0]
    shared: Shared[int] = Shared(ttl=2.0, clock=lambda: now[0])
    reads: list[str] = []
    gate = asyncio.Event()

    async def read() -> int:
        reads.append("ns")
        await gate.wait()
        return len(reads)

    waiting = [asyncio.create_task(shared.get("ns", read)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert len(reads) == 1
    now[0] += 1.9
    assert await shared.get("ns", read) == 1 and len(reads) == 1
    assert await shared.get("other", read) == 2  # another key is its own read
    now[0] += 0.2  # expired: read again
    assert await shared.get("ns", read) == 3


async def test_shared_does_not_keep_a_failure() -> None:
    shared: Shared[int] = Shared(ttl=60.0)
    calls = 0
    gate = asyncio.Event()

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise ApiException(status=500, reason="boom")

    first = asyncio.create_task(shared.get("ns", failing))
    second = asyncio.create_task(shared.get("ns", failing))
    await asyncio.sleep(0)
    gate.set()
    for task in (first, second):
        with pytest.raises(ApiException):
            await task
    assert calls == 1

    async def works() -> int:
        return 7

    assert await shared.get("ns", works) == 7  # the failure was not remembered


async def test_a_cancelled_caller_never_fails_the_others_sharing_its_read() -> None:
    # A pod whose create is cancelled (deleted meanwhile) must not fail the pods that share
    # its read of the namespace's services.
    shared: Shared[int] = Shared(ttl=60.0)
    gate = asyncio.Event()

    async def slow() -> int:
        await gate.wait()
        return 5

    first = asyncio.create_task(shared.get("ns", slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared.get("ns", slow))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == 5
    with pytest.raises(asyncio.CancelledError):
        await first
