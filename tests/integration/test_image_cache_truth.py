"""End to end: the right cache every time, and the truth about which one was used.

Real control plane, the node as a process (with its ImageCache controller where a scenario
needs ImageCache objects), the ECI emulator through the official SDK. The node's periodic
re-sync is far beyond any test (600 s), as in ``test_image_cache_pods``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client

from matcher import normalize_image
from tests.fixtures.node import NodeFactory
from tests.integration.test_image_cache_pods import (  # noqa: F401 - fixtures
    BUSYBOX,
    MIN_RELIST_AGE_S,
    NGINX,
    REDIS,
    RESYNC_S,
    Scenario,
    app_name,
    emulator_realtime,
    eventually,
    world,
)
from tests.integration.test_imagecache_controller import cleanup, crd  # noqa: F401 - fixture
from vk_eci.cloud.caches.annotations import (
    AUTO_KEY,
    CHOSEN_CACHE_ANNOTATION,
    CHOSEN_MATCH_ANNOTATION,
    EXPLICIT_KEY,
    PERFECT_MATCH_KEY,
)
from vk_eci.cloud.caches.autocreate import cache_name
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "eci.alibabacloud.com", "v1", "imagecaches"


async def imagecache(api: client.ApiClient, name: str, images: list[str], size: int) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImageCache",
            "metadata": {"name": name}, "spec": {"images": images, "imageCacheSize": size}}
    await client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body)


async def ready_id(api: client.ApiClient, name: str) -> str | None:
    obj = await client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                                       name)
    status = obj.get("status") or {}
    return status.get("imageCacheId") if status.get("phase") == "Ready" else None


async def test_caches_ready_in_the_same_second_pick_the_smaller(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    """The issue's stale view: the node learnt of the 25 GiB cache only because a pod named it;
    a full hit then never re-listed, so the 20 GiB cache (Ready in the same second) was unseen.
    The node's own ImageCache controller feeds the catalog, so the smaller one wins."""
    node = await node_factory(imagecache_resync_interval=str(RESYNC_S),
                              imagecache_min_relist_age=str(MIN_RELIST_AGE_S),
                              imagecache_controller=True,
                              imagecache_lease_name=f"ic-{uuid.uuid4().hex[:8]}")
    scene = Scenario(emulator_realtime, node, kube_api, namespace)
    suffix = uuid.uuid4().hex[:6]
    sample, small = f"imagecache-sample-{suffix}", f"imagecache-small-{suffix}"
    try:
        await imagecache(kube_api, sample, [NGINX, BUSYBOX], 25)
        await imagecache(kube_api, small, [NGINX], 20)

        async def both_ready() -> tuple[str, str] | None:
            a, b = await ready_id(kube_api, sample), await ready_id(kube_api, small)
            return (a, b) if a and b else None
        big_id, small_id = await eventually(both_ready, 60, "both ImageCaches Ready", node)
        # A pod naming the big cache: the catalog now certainly knows that one.
        named = app_name()
        await scene.deploy(named, [NGINX], {EXPLICIT_KEY: big_id})
        await scene.wait_phase(named, "Running")
        app = app_name()
        await scene.deploy(app, [NGINX], {AUTO_KEY: "true"})
        pod = await scene.wait_phase(app, "Running")
        assert scene.created(app)["ImageSnapshotId"] == small_id
        assert pod.metadata.annotations[CHOSEN_CACHE_ANNOTATION] == small_id
        assert await scene.eci_used(app) == (True, small_id)  # ECI's own word
        ann = await scene.reports_follow_eci(app, "node")
        assert ann[CHOSEN_CACHE_ANNOTATION] == small_id and ann[CHOSEN_MATCH_ANNOTATION] == "1/1"
        m = await scene.metrics()
        assert m[("vk_eci_image_cache_results_total",
                  (("chosen_by", "node"), ("result", "hit")))] == 2  # named, and this one
        assert m[("vk_eci_image_cache_disagreements_total", ())] == 0
    finally:
        await cleanup(crd, sample, small)
        await asyncio.sleep(0)


async def test_perfect_match_starts_without_any_cache_then_the_node_built_cache_hits(
        world: Scenario) -> None:  # noqa: F811
    """A 1-image cache, a 3-image pod with perfect match: created with no cache at all (ECI
    records no hit), the node builds a cache of the three images, and the next identical pod
    hits it, by ECI's own word; annotations and /metrics say so in both cases."""
    await world.cache("partial", [NGINX])
    images = [NGINX, BUSYBOX, REDIS]
    first = app_name()
    await world.deploy(first, images, {AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"})
    await world.wait_phase(first, "Running")
    query = world.created(first)
    assert "ImageSnapshotId" not in query and "AutoMatchImageCache" not in query
    assert await world.eci_used(first) == (False, None)  # ECI never hit (nor was asked)
    ann = await world.reports_follow_eci(first, "node")
    assert ann[CHOSEN_MATCH_ANNOTATION] == "0/3"
    assert "SuccessfulHitImageCache" not in await world.events(await world.pod(first))

    async def built() -> dict[str, str] | None:
        found = [q for q in world.emu.recorded("CreateImageCache")
                 if q.get("ImageCacheName", "").startswith("vk-eci-")]
        return found[0] if found else None
    request = await eventually(built, 30, "the node's CreateImageCache", world.node)
    assert sorted(v for k, v in request.items() if k.startswith("Image.")) == sorted(
        normalize_image(i) for i in images)
    [cache] = await world.eci.describe_image_caches(name=request["ImageCacheName"])
    await world.wait_cache(cache.image_cache_id)

    second = app_name()
    await world.deploy(second, images, {AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"})
    await world.wait_phase(second, "Running")
    assert world.created(second)["ImageSnapshotId"] == cache.image_cache_id
    assert await world.eci_used(second) == (True, cache.image_cache_id)
    ann = await world.reports_follow_eci(second, "node")
    assert ann[CHOSEN_MATCH_ANNOTATION] == "3/3"
    kind, message = await world.wait_event(second, "SuccessfulHitImageCache")  # ECI's own
    assert kind == "Normal" and cache.image_cache_id in message
    m = await world.metrics()
    assert m[("vk_eci_image_cache_results_total", (("chosen_by", "node"), ("result", "miss")))] == 1
    assert m[("vk_eci_image_cache_results_total", (("chosen_by", "node"), ("result", "hit")))] == 1
    assert m[("vk_eci_image_cache_disagreements_total", ())] == 0
    # Built once per image set, however many pods miss.
    assert len([q for q in world.emu.recorded("CreateImageCache")
                if q.get("ImageCacheName") == request["ImageCacheName"]]) == 1


async def test_eci_matching_a_cache_the_node_did_not_see_is_reported_as_eci_used_it(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str) -> None:
    """A cache made outside Kubernetes after the node's last listing, with re-listing held
    off (minimum listing age 600 s): the node misses and sends AutoMatchImageCache, ECI hits
    the cache server-side. The pod, its events and /metrics say what ECI did, chosen by ECI,
    and the disagreement is a Warning and a counter."""
    node = await node_factory(imagecache_resync_interval=str(RESYNC_S),
                              imagecache_min_relist_age="600")
    scene = Scenario(emulator_realtime, node, kube_api, namespace)

    async def listed() -> bool:  # the node's start-up listing, before the cache exists
        return bool(scene.emu.recorded("DescribeImageCaches"))
    await eventually(listed, 30, "the node's first cache listing", node)
    cache_id = await scene.cache("outside", [NGINX])
    app = app_name()
    await scene.deploy(app, [NGINX], {AUTO_KEY: "true"})
    await scene.wait_phase(app, "Running")
    query = scene.created(app)
    assert "ImageSnapshotId" not in query and query["AutoMatchImageCache"] == "True"
    assert await scene.eci_used(app) == (True, cache_id)
    ann = await scene.reports_follow_eci(app, "eci")
    assert ann[CHOSEN_MATCH_ANNOTATION] == "1/1"
    assert ann["k8s.aliyun.com/eci-matched-image-cache"] == cache_id   # Alibaba's name too
    kind, message = await scene.wait_event(app, "ImageCacheDisagreement")
    assert kind == "Warning" and f"chose image cache none but ECI used {cache_id}" in message
    m = await scene.metrics()
    assert m[("vk_eci_image_cache_results_total", (("chosen_by", "eci"), ("result", "hit")))] == 1
    assert m[("vk_eci_image_cache_disagreements_total", ())] == 1
    assert m[("vk_eci_image_cache_lookups_total", (("mode", "auto"), ("result", "miss")))] == 1


async def test_a_squatted_cache_name_never_stops_the_node_building_its_own(
        world: Scenario) -> None:  # noqa: F811
    """The name of the cache the node builds for an image set is predictable.
    Someone else's cache of that name (other images, other tags) is neither taken for the
    node's nor touched: the node builds its own, tagged, and the next pod hits that one."""
    images = [NGINX, REDIS]
    name = cache_name([normalize_image(i) for i in images])
    squat = await world.cache(name, [NGINX])  # untagged, and holds only one of the two
    first = app_name()
    await world.deploy(first, images, {AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"})
    await world.wait_phase(first, "Running")

    async def built() -> dict[str, str] | None:
        found = [q for q in world.emu.recorded("CreateImageCache")
                 if q.get("ImageCacheName") == name and "Tag.1.Key" in q]
        return found[0] if found else None
    request = await eventually(built, 30, "the node's own CreateImageCache", world.node)
    tags = {request[k]: request[k.replace(".Key", ".Value")] for k in request
            if k.startswith("Tag.") and k.endswith(".Key")}
    # Its provenance too: built without credentials (docs/IMAGE_CACHES.md).
    assert tags == {"vk-eci.io/built-by": "node", "vk-eci.io/cluster": f"c-{world.node.name}",
                    "vk-eci.io/provenance": "none", "vk-eci.io/credentialed-registries": "none"}
    own = [c.image_cache_id for c in await world.eci.describe_image_caches(name=name)
           if c.image_cache_id != squat]
    assert len(own) == 1
    await world.wait_cache(own[0])
    assert squat in world.node.logs()  # named as left alone

    second = app_name()
    await world.deploy(second, images, {AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"})
    await world.wait_phase(second, "Running")
    assert world.created(second)["ImageSnapshotId"] == own[0]
    assert [c.image_cache_id for c in await world.eci.describe_image_caches(ids=[squat])] == \
        [squat]
    assert not world.emu.recorded("UpdateImageCache") and not world.emu.recorded(
        "DeleteImageCache")
