"""vk_eci.kubelet.auth: path → node subresource, verbs, certificate identities, the cache."""

from __future__ import annotations

import pytest

from vk_eci.kubelet.auth import (
    Identity,
    TtlCache,
    identity_from_cert,
    subresources_for,
    verb_for,
)


@pytest.mark.parametrize("path, subs", [
    ("/containerLogs/ns/p/c", ("log", "proxy")),
    ("/stats/summary", ("stats", "proxy")),
    ("/metrics/resource", ("metrics", "proxy")),
    ("/healthz", ("healthz", "proxy")),
    ("/exec/ns/p/c", ("proxy",)),
    ("/run/ns/p/c", ("proxy",)),
    ("/statsx", ("proxy",)),  # a prefix only counts at a path boundary
])
def test_subresources_follow_the_path(path: str, subs: tuple[str, ...]) -> None:
    assert subresources_for(path) == subs


def test_verbs_follow_the_method_as_kubelet() -> None:
    assert [verb_for(m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")] == \
        ["get", "get", "create", "update", "patch", "delete"]


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
