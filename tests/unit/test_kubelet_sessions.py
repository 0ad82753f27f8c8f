"""vk_eci.kubelet.sessions caps, and the interactive ECI budgets of vk_eci.cloud.api.ratelimit."""

from __future__ import annotations

import asyncio

import pytest

from vk_eci.cloud.api.errors import Throttled
from vk_eci.cloud.api.ratelimit import INTERACTIVE, RateLimiter, TokenBucket
from vk_eci.kubelet.auth import Identity
from vk_eci.kubelet.sessions import SessionLimiter, SessionLimits, TooManySessions
from vk_eci.metrics import Metrics

ALICE = Identity(user="alice", method="token")
BOB = Identity(user="bob", method="token")
APISERVER = Identity(user="kube-apiserver-kubelet-client", method="x509")


def test_caps_per_user_namespace_and_node_name_themselves() -> None:
    metrics = Metrics()
    limiter = SessionLimiter(SessionLimits(per_node=4, per_namespace=3, per_user=2), metrics)
    with limiter.open(ALICE, "a", "logs"), limiter.open(ALICE, "a", "logs"):
        with pytest.raises(TooManySessions, match="user 'alice' already has 2"), \
                limiter.open(ALICE, "b", "logs"):
            pass
        with limiter.open(BOB, "a", "logs"):
            with pytest.raises(TooManySessions, match="namespace 'a' already has 3"), \
                    limiter.open(BOB, "a", "exec"):
                pass
            with limiter.open(BOB, "b", "logs"), \
                    pytest.raises(TooManySessions, match="the node already serves 4"), \
                    limiter.open(APISERVER, "c", "logs"):
                pass
    assert limiter.open_sessions == 0 and limiter.refused == 3
    sample = metrics.registry.get_sample_value
    assert [sample("vk_eci_kubelet_sessions_refused_total", {"cap": c})
            for c in ("user", "namespace", "node")] == [1.0, 1.0, 1.0]
    assert sample("vk_eci_kubelet_sessions") == 0.0
    # Nothing is left behind per namespace or user once sessions close.
    assert not limiter._by_namespace and not limiter._by_user


def test_the_api_server_certificate_is_held_by_namespace_and_node_caps_only() -> None:
    limiter = SessionLimiter(SessionLimits(per_node=10, per_namespace=5, per_user=1))
    opened = [limiter.open(APISERVER, f"ns{i % 2}", "logs") for i in range(10)]
    for cm in opened:
        cm.__enter__()
    with pytest.raises(TooManySessions, match="node"):
        limiter.open(APISERVER, "ns9", "logs").__enter__()
    for cm in opened:
        cm.__exit__(None, None, None)
    assert limiter.open_sessions == 0


async def test_a_full_interactive_waiting_room_refuses_at_once() -> None:
    now = [0.0]
    gate = asyncio.Event()

    async def sleep(delay: float) -> None:
        await gate.wait()
        now[0] += delay

    bucket = TokenBucket(6, clock=lambda: now[0], sleep=sleep, max_waiters=2, name="x")
    await bucket.acquire()  # the only token: 6 a minute holds one
    waiting = [asyncio.create_task(bucket.acquire()) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Throttled, match="2 calls already wait for the x budget"):
        await bucket.acquire()
    gate.set()
    await asyncio.gather(*waiting)


async def test_interactive_calls_never_take_the_nodes_tokens() -> None:
    now = [0.0]
    limiter = RateLimiter({"DescribeContainerGroups": 60,
                           f"DescribeContainerGroups@{INTERACTIVE}": 60},
                          default_per_minute=None, clock=lambda: now[0])
    # Spend the interactive budget to the bone: the node's own bucket is untouched.
    for _ in range(6):
        await limiter.acquire("DescribeContainerGroups", INTERACTIVE)
    assert await limiter.acquire("DescribeContainerGroups") == 0.0  # no wait
    # and the node's calls wait for the node's bucket only, whatever interactive use does.
    buckets = limiter._buckets
    assert set(buckets) == {"DescribeContainerGroups",
                            f"DescribeContainerGroups@{INTERACTIVE}"}
    assert buckets[f"DescribeContainerGroups@{INTERACTIVE}"]._max_waiters is not None
    assert buckets["DescribeContainerGroups"]._max_waiters is None
