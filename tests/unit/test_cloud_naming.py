"""vk_eci.cloud.naming: group names and tags."""

from __future__ import annotations

import re

import pytest

from vk_eci.cloud import naming

VALID = re.compile(r"^[a-z0-9][a-z0-9-]{0,126}[a-z0-9]$")


@pytest.mark.parametrize(("ns", "name", "expected"), [
    ("default", "web", "default-web"),
    ("kube-system", "dns-7f9c", "kube-system-dns-7f9c"),
])
def test_simple_names_are_kept(ns: str, name: str, expected: str) -> None:
    assert naming.group_name(ns, name) == expected


@pytest.mark.parametrize(("ns", "name"), [
    ("default", "a" * 200),
    ("team.ns", "web.v1"),
    ("default", "Web"),
    ("x" * 63, "y" * 253),
    ("default", "..."),
])
def test_changed_names_are_valid_stable_and_hashed(ns: str, name: str) -> None:
    out = naming.group_name(ns, name)
    assert VALID.match(out), out
    assert 2 <= len(out) <= 128
    assert out == naming.group_name(ns, name)
    assert re.search(r"-[0-9a-f]{10}$", out)


def test_distinct_pods_get_distinct_names() -> None:
    # These clean to the same text; the hash keeps them apart.
    assert naming.group_name("a.b", "c") != naming.group_name("a-b", "c")
    long_a = naming.group_name("default", "x" * 150 + "a")
    long_b = naming.group_name("default", "x" * 150 + "b")
    assert long_a != long_b


def test_tags() -> None:
    tags = naming.pod_tags("prod", "virtual-kubelet", "default", "web", "uid-1")
    assert tags == {
        "vk-eci.io/cluster": "prod", "vk-eci.io/node": "virtual-kubelet",
        "k8s.aliyun.com/namespace": "default", "k8s.aliyun.com/pod-name": "web",
        "k8s.aliyun.com/pod-uid": "uid-1"}
    assert naming.node_tags("prod", "vk") == {"vk-eci.io/cluster": "prod",
                                              "vk-eci.io/node": "vk"}
    long = naming.pod_tags("c", "n", "ns", "p" * 253, "u")["k8s.aliyun.com/pod-name"]
    assert len(long) <= 128
