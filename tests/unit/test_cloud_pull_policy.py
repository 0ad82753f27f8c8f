"""Effective Always becomes IfNotPresent when a pod starts from a cache."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.caches.pull_policy import (
    ContainerImage,
    PullPolicyMode,
    containers_of,
    effective_pull_policy,
    plan_pull_policy,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("image,policy,effective", [
    ("nginx", None, "Always"),
    ("nginx:latest", None, "Always"),
    ("nginx:1.25", None, "IfNotPresent"),
    (f"nginx@{DIGEST}", None, "IfNotPresent"),
    (f"nginx:latest@{DIGEST}", None, "IfNotPresent"),
    ("localhost:5000/app", None, "Always"),          # a port is not a tag
    ("localhost:5000/app:v1", None, "IfNotPresent"),
    ("nginx:1.25", "Always", "Always"),
    ("nginx", "IfNotPresent", "IfNotPresent"),
    ("nginx", "Never", "Never"),
    ("nginx", "", "Always"),
])
def test_effective_policy(image: str, policy: str | None, effective: str) -> None:
    assert effective_pull_policy(image, policy) == effective


CONTAINERS = [
    ContainerImage("setup", "busybox", None, init=True),
    ContainerImage("app", "nginx:1.25", "Always"),
    ContainerImage("sidecar", "envoy:v1", None),
    ContainerImage("pinned", "redis:7", "IfNotPresent"),
]


def test_override_changes_every_effective_always() -> None:
    plan = plan_pull_policy(CONTAINERS, "imc-abc")
    assert plan.overrides == {"setup": "IfNotPresent", "app": "IfNotPresent"}
    assert plan.event is not None
    kind, reason, message = plan.event
    assert (kind, reason) == ("Normal", "ImagePullPolicyOverridden")
    assert "setup (init)" in message and "app" in message and "imc-abc" in message
    assert "sidecar" not in message and "pinned" not in message


def test_warn_changes_nothing_but_warns() -> None:
    plan = plan_pull_policy(CONTAINERS, "imc-abc", PullPolicyMode.WARN)
    assert plan.overrides == {}
    assert plan.containers == ("setup", "app")
    assert plan.event is not None and plan.event[0] == "Warning"
    assert "setup" in plan.event[2] and "app" in plan.event[2]


def test_off_and_no_cache_do_nothing() -> None:
    assert plan_pull_policy(CONTAINERS, "imc-abc", PullPolicyMode.OFF).event is None
    no_cache = plan_pull_policy(CONTAINERS, None)
    assert no_cache.overrides == {} and no_cache.event is None


def test_nothing_to_change_means_no_event() -> None:
    plan = plan_pull_policy([ContainerImage("a", "nginx:1", "IfNotPresent")], "imc-abc")
    assert plan.overrides == {} and plan.event is None


def test_containers_of_v1pod_and_dict() -> None:
    pod = V1Pod(metadata=V1ObjectMeta(name="p"), spec=V1PodSpec(
        init_containers=[V1Container(name="i", image="busybox")],
        containers=[V1Container(name="c", image="nginx:1", image_pull_policy="Always")]))
    assert containers_of(pod) == [ContainerImage("i", "busybox", None, init=True),
                                  ContainerImage("c", "nginx:1", "Always")]
    raw = {"spec": {"containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]}}
    assert containers_of(raw) == [ContainerImage("c", "nginx", "Never")]
    assert containers_of({}) == []


def test_mode_parse() -> None:
    assert PullPolicyMode.parse("rewrite") is PullPolicyMode.OVERRIDE
    assert PullPolicyMode.parse(" Override ") is PullPolicyMode.OVERRIDE
    assert PullPolicyMode.parse("WARN") is PullPolicyMode.WARN
    with pytest.raises(ValueError, match="'sometimes'"):
        PullPolicyMode.parse("sometimes")
