"""Issue 11, end to end: the right cache every time, and the truth about which one was used.

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

from tests.fixtures.node import NodeFactory
from tests.integration.test_image_cache_pods import (  # noqa: F401 - emulator_realtime: fixture
    BUSYBOX,
    MIN_RELIST_AGE_S,
    NGINX,
    RESYNC_S,
    Scenario,
    app_name,
    emulator_realtime,
    eventually,
)
from tests.integration.test_imagecache_controller import cleanup, crd  # noqa: F401 - fixture
from vk_eci.cloud.annotations import AUTO_KEY, CHOSEN_CACHE_ANNOTATION, EXPLICIT_KEY
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
    world = Scenario(emulator_realtime, node, kube_api, namespace)
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
        await world.deploy(named, [NGINX], {EXPLICIT_KEY: big_id})
        await world.wait_phase(named, "Running")
        app = app_name()
        await world.deploy(app, [NGINX], {AUTO_KEY: "true"})
        pod = await world.wait_phase(app, "Running")
        assert world.created(app)["ImageSnapshotId"] == small_id
        assert pod.metadata.annotations[CHOSEN_CACHE_ANNOTATION] == small_id
    finally:
        await cleanup(crd, sample, small)
        await asyncio.sleep(0)
