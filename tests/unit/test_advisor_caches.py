"""What the node's advisor reads of ImageCache objects and pods, and what it writes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1Pod, V1PodStatus

from vk_eci.advisor.model import ADVISOR_OWNED_LABEL, Action, PlannedCache
from vk_eci.advisor.objects import SAVED_ANNOTATION, imagecache_object
from vk_eci.cloud.caches.annotations import CHOSEN_CACHE_ANNOTATION
from vk_eci.cloud.caches.catalog import CacheInfo
from vk_eci.cluster.advising import caches as ac
from vk_eci.runner.advisor import chain

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=UTC).timestamp()
NGINX = "docker.io/library/nginx:1.25"
REDIS = "docker.io/library/redis:7"


def obj(name: str, images: list[str], *, owner: str | None = None, cache_id: str | None = None,
        phase: str = "Ready", size: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"images": images}
    if size is not None:
        spec["imageCacheSize"] = size
    return {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "7",
                         "creationTimestamp": "2026-11-29T00:00:00Z",
                         "labels": {ADVISOR_OWNED_LABEL: owner} if owner else {}},
            "spec": spec, "status": {"phase": phase, **({"imageCacheId": cache_id}
                                                         if cache_id else {})}}


def test_owner_value_is_the_node_name_or_a_hashed_short_form() -> None:
    assert ac.owner_value("virtual-kubelet") == "virtual-kubelet"
    long = "vk-" + "a" * 70 + ".zone-h.example.com"
    value = ac.owner_value(long)
    assert len(value) <= 63 and value != ac.owner_value(long + "x")


def test_existing_caches_are_objects_and_unclaimed_eci_caches() -> None:
    objects = [
        obj("user", ["nginx:1.25"], cache_id="imc-user", size=40),
        obj("mine", ["redis:7"], owner="node-a", cache_id="imc-mine"),
        obj("theirs", ["redis:7"], owner="node-b", cache_id="imc-theirs"),
        obj("broken", ["redis:7"], phase="Failed"),
        obj("mine-broken", ["redis:7"], owner="node-a", phase="Failed"),
        {"metadata": {"name": "unreadable"}, "spec": {"images": "redis"}},
    ]
    catalog = [
        CacheInfo("imc-user", "user", "Ready", (NGINX,), 40, 0.0),  # the object's own cache
        CacheInfo("imc-console", "made-by-hand", "Ready", (NGINX, REDIS), 20, 5.0),
        CacheInfo("imc-building", "building", "Creating", (NGINX,), 20, 5.0),
    ]
    got = {c.name: c for c in ac.existing_caches(objects, catalog, "node-a", NOW)}
    # A failed build is no supply (apply mode retires an owned one the plan does not name).
    assert set(got) == {"user", "mine", "theirs", "made-by-hand"}
    assert got["user"].images == ("nginx:1.25",) and got["user"].size_gib == 40
    assert got["user"].created_at == datetime(2026, 11, 29, tzinfo=UTC).timestamp()
    assert [n for n, c in got.items() if c.advisor_owned] == ["mine"]
    assert ac.owned_images(objects, "node-a") == {"imc-mine": (REDIS,)}


def planned(action: Action = Action.CREATE, images: tuple[str, ...] = (NGINX,),
            size: int = 20) -> PlannedCache:
    return PlannedCache(name="advisor-abc", action=action, images=images, size_gib=size,
                        saved_seconds_per_day=1234.4, cost_per_day=20.0,
                        workloads=("ns/Deployment/web",))


def test_new_object_is_labelled_with_the_node_and_says_why() -> None:
    body = imagecache_object(planned(), "node-a")
    assert body["metadata"]["labels"] == {ADVISOR_OWNED_LABEL: "node-a"}
    assert body["metadata"]["annotations"][SAVED_ANNOTATION] == "1234"
    assert body["spec"] == {"images": [NGINX], "imageCacheSize": 20}
    assert ac.owned(body, "node-a") and not ac.owned(body, "node-b")
    assert not ac.owned(imagecache_object(planned()), "node-a")  # vk-eci advise's "true"
    assert not ac.differs(obj("x", ["nginx:1.25"]), planned())
    assert ac.differs(obj("x", ["nginx:1.25"], size=30), planned())
    assert ac.differs(obj("x", ["nginx:1.25", "redis:7"]), planned())


def a_pod(name: str, cache: str | None, phase: str | None,
          started_ago: float | None = None) -> V1Pod:
    start = (datetime.fromtimestamp(NOW - started_ago, UTC)
             if started_ago is not None else None)
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="ns", annotations=(
        {CHOSEN_CACHE_ANNOTATION: cache} if cache else None)),
        status=V1PodStatus(phase=phase, start_time=start) if phase else None)


def test_a_retired_cache_is_used_while_pods_start_from_it_or_just_did() -> None:
    grace = 300.0
    assert ac.still_used("imc-x", [a_pod("a", "imc-y", "Pending")], NOW, grace) is None
    assert "still starting" in (ac.still_used("imc-x", [a_pod("a", "imc-x", "Pending")], NOW,
                                              grace) or "")
    assert "still starting" in (ac.still_used("imc-x", [a_pod("a", "imc-x", None)], NOW,
                                              grace) or "")
    assert "started from it" in (ac.still_used(
        "imc-x", [a_pod("a", "imc-x", "Running", started_ago=10)], NOW, grace) or "")
    # Pods that started from it long ago, or ended, keep running without it.
    assert ac.still_used("imc-x", [a_pod("a", "imc-x", "Running", started_ago=900),
                                   a_pod("b", "imc-x", "Succeeded", started_ago=10)],
                         NOW, grace) is None
    assert ac.still_used(None, [a_pod("a", None, "Pending")], NOW, grace) is None


async def test_chained_hooks_all_run_and_the_first_error_is_raised() -> None:
    seen: list[str] = []

    async def first(pod: Any, events: list[Any]) -> None:
        seen.append("first")
        raise RuntimeError("first failed")

    async def second(pod: Any, events: list[Any]) -> None:
        seen.append("second")

    hook = chain(first, None, second)
    with pytest.raises(RuntimeError, match="first failed"):
        await hook(None, [])
    assert seen == ["first", "second"]
