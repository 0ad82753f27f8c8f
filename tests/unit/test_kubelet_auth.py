"""vk_eci.kubelet.auth: path → node subresource, verbs, certificate identities, the cache."""

from __future__ import annotations

import asyncio

import pytest

from vk_eci.kubelet.auth import (
    Identity,
    identity_from_cert,
    subresources_for,
    verb_for,
)
from vk_eci.sharing import TtlCache, single_flight


async def _single_flight(inflight, key, review):  # type: ignore[no-untyped-def]
    return await single_flight(inflight, key, review, name="test-review")


@pytest.mark.parametrize("path, subs", [
    # As the kubelet's GetRequestAttributes (pkg/kubelet/server/auth.go).
    ("/containerLogs/ns/p/c", ("proxy",)),  # not nodes/log: that is /logs/ only
    ("/logs/", ("log",)),
    ("/logs/syslog", ("log",)),
    ("/stats/summary", ("stats",)),
    ("/stats", ("stats",)),
    ("/metrics/resource", ("metrics",)),
    ("/metrics", ("metrics",)),
    ("/metrics/cadvisor", ("metrics",)),
    ("/healthz", ("healthz", "proxy")),
    ("/pods", ("pods", "proxy")),
    ("/runningpods/", ("pods", "proxy")),
    ("/runningpods", ("pods", "proxy")),
    ("/pods/", ("pods", "proxy")),
    ("/configz", ("configz", "proxy")),
    ("/checkpoint/ns/p/c", ("checkpoint",)),
    ("/exec/ns/p/c", ("proxy",)),
    ("/attach/ns/p/c", ("proxy",)),
    ("/portForward/ns/p", ("proxy",)),
    ("/run/ns/p/c", ("proxy",)),
    ("/statsx", ("proxy",)),  # a prefix only counts at a path boundary
    ("/logsx/a", ("proxy",)),
    ("/", ("proxy",)),
])
def test_subresources_follow_the_path(path: str, subs: tuple[str, ...]) -> None:
    assert subresources_for(path) == subs


def test_verbs_follow_the_method_as_kubelet() -> None:
    assert [verb_for(m) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")] == \
        ["get", "create", "update", "patch", "delete"]
    # The kubelet gives other methods no verb; nothing is allowed without one.
    assert verb_for("HEAD") == verb_for("OPTIONS") == verb_for("CONNECT") == ""


def test_identity_from_a_verified_certificate() -> None:
    peercert = {"subject": ((("organizationName", "system:masters"),),
                            (("commonName", "kube-apiserver-kubelet-client"),))}
    who = identity_from_cert(peercert)
    assert who == Identity(user="kube-apiserver-kubelet-client",
                           groups=("system:masters", "system:authenticated"), method="x509")
    assert identity_from_cert({}) is None
    assert identity_from_cert(None) is None
    assert identity_from_cert({"subject": ((("organizationName", "x"),),)}) is None


def test_cache_entries_expire_and_size_is_bounded() -> None:
    now = [0.0]
    cache: TtlCache[bool] = TtlCache(max_size=2, clock=lambda: now[0])
    cache.put("a", True, ttl=10)
    cache.put("b", False, ttl=1)
    assert cache.get("a") is True and cache.get("b") is False
    now[0] = 1.0
    assert cache.get("b") is None  # expired
    cache.put("c", True, ttl=10)
    cache.put("d", True, ttl=10)  # evicts the least recently used: a
    assert cache.get("a") is None and cache.get("c") is True and cache.get("d") is True


def test_identity_key_separates_groups_and_extra() -> None:
    a = Identity(user="u", groups=("g1",))
    b = Identity(user="u", groups=("g2",))
    c = Identity(user="u", groups=("g1",), extra={"scopes": ("x",)})
    assert len({a.key(), b.key(), c.key()}) == 3


@pytest.mark.parametrize("one, other", [
    # Separators inside values must not make two identities share a key (a denied user
    # must never be answered from an allowed user's cache entry).
    (Identity(user="a|b", groups=("c",)), Identity(user="a", groups=("b|c",))),
    (Identity(user="u", groups=("g1,g2",)), Identity(user="u", groups=("g1", "g2"))),
    (Identity(user="u", extra={"k": ("a,b",)}), Identity(user="u", extra={"k": ("a", "b")})),
    (Identity(user="u", extra={"a": ("1;b=2",)}),
     Identity(user="u", extra={"a": ("1",), "b": ("2",)})),
    (Identity(user="u", uid="x|"), Identity(user="u|x", uid="")),
])
def test_identity_keys_do_not_collide_through_separators(one: Identity, other: Identity) -> None:
    assert one.key() != other.key()


async def test_a_cancelled_caller_does_not_cancel_the_others_of_a_shared_review() -> None:
    gate = asyncio.Event()
    calls = 0

    async def review() -> str:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "answer"

    inflight: dict[str, asyncio.Task[str]] = {}
    first = asyncio.create_task(_single_flight(inflight, "k", review))
    second = asyncio.create_task(_single_flight(inflight, "k", review))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    first.cancel()  # the client of the first request went away
    await asyncio.sleep(0)
    gate.set()
    assert await second == "answer"
    assert first.cancelled()
    assert calls == 1 and not inflight


async def test_a_failed_review_reaches_every_waiter_and_is_not_kept() -> None:
    async def review() -> str:
        await asyncio.sleep(0)
        raise RuntimeError("API server down")

    inflight: dict[str, asyncio.Task[str]] = {}
    results = await asyncio.gather(*(_single_flight(inflight, "k", review) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and not inflight
