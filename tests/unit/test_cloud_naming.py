"""vk_eci.cloud.api.naming: group names and tags."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vk_eci.cloud.api import naming

VALID = re.compile(r"^[a-z0-9][a-z0-9-]{0,126}[a-z0-9]$")
DIGEST = re.compile(r"-[a-z2-7]{26}$")


@pytest.mark.parametrize(("ns", "name", "head"), [
    ("default", "web", "default-web"),
    ("kube-system", "dns-7f9c", "kube-system-dns-7f9c"),
    ("team.ns", "web.v1", "team-ns-web-v1"),
    ("default", "Web", "default-web"),
])
def test_names_read_as_the_pod_and_end_in_a_digest(ns: str, name: str, head: str) -> None:
    out = naming.group_name(ns, name)
    assert out.startswith(head + "-") and DIGEST.search(out) and VALID.match(out), out
    assert out == naming.group_name(ns, name)


@pytest.mark.parametrize(("ns", "name"), [
    ("default", "a" * 200), ("x" * 63, "y" * 253), ("default", "..."), ("-", "-"),
])
def test_changed_names_are_valid(ns: str, name: str) -> None:
    out = naming.group_name(ns, name)
    assert VALID.match(out) and 2 <= len(out) <= 128 and DIGEST.search(out), out


def test_twin_pods_of_two_namespaces_get_distinct_names() -> None:
    # Twin pods of two namespaces: the readable heads are equal, the names are not.
    assert naming.group_name("team", "prod-db-0") != naming.group_name("team-prod", "db-0")
    assert naming.group_name("a.b", "c") != naming.group_name("a-b", "c")
    assert naming.group_name("default", "x" * 150 + "a") != naming.group_name(
        "default", "x" * 150 + "b")


_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
_pod_name = st.lists(_label, min_size=1, max_size=4).map(".".join)


@given(st.tuples(_label, _pod_name), st.tuples(_label, _pod_name))
def test_distinct_pods_never_share_a_name(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert (naming.group_name(*a) == naming.group_name(*b)) == (a == b)
    assert VALID.match(naming.group_name(*a))


def test_belongs_to_checks_namespace_name_and_uid() -> None:
    tags = naming.pod_tags("c", "n", "team", "prod-db-0", "uid-1")
    assert naming.belongs_to(tags, "team", "prod-db-0", "uid-1")
    assert naming.belongs_to(tags, "team", "prod-db-0", None)
    assert not naming.belongs_to(tags, "team-prod", "db-0", None)
    assert not naming.belongs_to(tags, "team", "prod-db-0", "uid-2")
    assert naming.pod_key("team", "prod-db-0") != naming.pod_key("team-prod", "db-0")


def test_tags() -> None:
    tags = naming.pod_tags("prod", "virtual-kubelet", "default", "web", "uid-1")
    assert tags == {
        "vk-eci.io/cluster": "prod", "vk-eci.io/node": "virtual-kubelet",
        "k8s.aliyun.com/namespace": "default", "k8s.aliyun.com/pod-name": "web",
        "k8s.aliyun.com/pod-uid": "uid-1"}
    assert naming.node_tags("prod", "vk") == {"vk-eci.io/cluster": "prod",
                                              "vk-eci.io/node": "vk"}
    assert "k8s.aliyun.com/pod-uid" not in naming.pod_tags("c", "n", "ns", "p", None)
    long = naming.pod_tags("c", "n", "ns", "p" * 253, "u")["k8s.aliyun.com/pod-name"]
    assert len(long) <= 128


def test_the_default_cluster_name_is_the_kube_system_uid() -> None:
    uid = "6F1C2A9E-0000-4000-8000-00000000000A"
    name = naming.derived_cluster_name(uid)
    assert name == "k8s-6f1c2a9e-0000-4000-8000-00000000000a"
    assert naming.derived_cluster_name(uid) == name  # stable across restarts
    assert naming.derived_cluster_name("6f1c2a9e-0000-4000-8000-00000000000b") != name
    assert name != naming.LEGACY_CLUSTER
    # An unusual UID (too long, or characters a tag value should not carry) is digested.
    for odd in ("x" * 300, "uid with spaces", "acs:uid", "https://x"):
        out = naming.derived_cluster_name(odd)
        assert re.fullmatch(r"k8s-[a-z2-7]{26}", out), out
    assert naming.derived_cluster_name("x" * 300) != naming.derived_cluster_name("x" * 301)
    with pytest.raises(ValueError):
        naming.derived_cluster_name("")


@given(st.uuids())
def test_derived_names_are_valid_tag_values_and_distinct(uid: object) -> None:
    name = naming.derived_cluster_name(str(uid))
    assert len(name) <= naming.MAX_TAG_VALUE and naming.tag_value(name) == name
    assert not name.startswith(("acs:", "aliyun")) and "://" not in name
    assert name.removeprefix("k8s-") == str(uid)


def test_a_group_is_checked_against_the_tags_it_was_looked_up_by() -> None:
    from alibabacloud_eci20180808 import models as m

    from vk_eci.cloud.groups.view import carries

    def group(tags: dict[str, str]) -> m.DescribeContainerGroupsResponseBodyContainerGroups:
        return m.DescribeContainerGroupsResponseBodyContainerGroups(tags=[
            m.DescribeContainerGroupsResponseBodyContainerGroupsTags(key=k, value=v)
            for k, v in tags.items()])

    mine = naming.node_tags("c1", "vk")
    assert carries(group(naming.pod_tags("c1", "vk", "ns", "p", "u")), mine)
    assert not carries(group(naming.pod_tags("c2", "vk", "ns", "p", "u")), mine)
    assert not carries(group({naming.TAG_NODE: "vk"}), mine)
    assert not carries(group({}), mine)
