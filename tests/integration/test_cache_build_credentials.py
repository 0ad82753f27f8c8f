"""A cache the node builds for a constrained miss carries the asking pod's own pull
credentials, and is that namespace's (docs/IMAGE_CACHES.md, "Private images stay private"):
team A's pod with its pull secret misses, the node builds a cache of the private image with
team A's credentials (and provenance tags naming team A), team A's next pod starts from it, and
team B's pod without credentials does not. Real control plane, the ECI emulator (the registry
is private there) and the node as a process.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.controlplane import scratch_namespace
from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_image_cache_pods import emulator_realtime  # noqa: F401 - fixture
from tests.integration.test_imagecache_controller import crd  # noqa: F401 - fixture
from tests.integration.test_security_private_images import (
    BILLING,
    REGISTRY,
    _async,
    created,
    pod_body,
    private_registry,
)
from vk_eci.cloud.caches.annotations import AUTO_KEY, PERFECT_MATCH_KEY
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

CONSTRAINED = {AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"}


def tags_of(query: dict[str, str]) -> dict[str, str]:
    return {query[k]: query[k.replace(".Key", ".Value")] for k in query
            if k.startswith("Tag.") and k.endswith(".Key")}


def credentials_of(query: dict[str, str]) -> set[tuple[str, str]]:
    return {(query[k], query[k.replace(".Server", ".UserName")]) for k in query
            if k.startswith("ImageRegistryCredential.") and k.endswith(".Server")}


async def test_node_builds_a_private_cache_with_the_namespaces_credentials_for_it_only(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    emu, core, team_a = emulator_realtime, client.CoreV1Api(kube_api), namespace
    await private_registry(emu, crd, team_a)
    node = await node_factory(imagecache_min_relist_age="1")

    # Team A's first pod misses (no cache yet), starts without one; the node builds one.
    await core.create_namespaced_pod(team_a, pod_body("first", node, CONSTRAINED,
                                                      pull_secret="regcred"))
    first = await eventually(lambda: _async(created(emu, team_a, "first")), 60,
                             "team A's first pod created", node)
    assert "ImageSnapshotId" not in first

    def built() -> dict[str, str] | None:
        found = [q for q in emu.recorded("CreateImageCache") if BILLING in q.values()]
        return found[0] if found else None
    request = await eventually(lambda: _async(built()), 60, "the node's CreateImageCache", node)
    assert credentials_of(request) == {(REGISTRY, "robot-a")}
    tags = tags_of(request)
    assert tags["vk-eci.io/built-by"] == "node"
    assert tags["vk-eci.io/provenance"] == team_a
    assert tags["vk-eci.io/credentialed-registries"] == REGISTRY

    async def ready_id() -> str | None:
        for cache in emu.state.caches.caches.values():
            if cache.name == request["ImageCacheName"] \
                    and cache.status(emu.state.now()) == "Ready":
                return cache.id
        return None
    cache_id = await eventually(ready_id, 90, "the node-built cache Ready", node)

    # Team A's next pod starts from it, and still pulls Always (every start authenticates).
    await core.create_namespaced_pod(team_a, pod_body("second", node, CONSTRAINED,
                                                      pull_secret="regcred"))
    query = await eventually(lambda: _async(created(emu, team_a, "second")), 60,
                             "team A's second pod created", node)
    assert query.get("ImageSnapshotId") == cache_id
    assert {query[k] for k in query if k.endswith(".ImagePullPolicy")} == {"Always"}

    # Team B's pod (no credentials) is never started from team A's cache.
    with scratch_namespace(crd, f"b-{team_a}") as team_b:
        await core.create_namespaced_pod(team_b, pod_body("b", node, CONSTRAINED))
        query = await eventually(lambda: _async(created(emu, team_b, "b")), 60,
                                 "team B's pod created", node)
        assert "ImageSnapshotId" not in query and "AutoMatchImageCache" not in query
        assert not any("ImageRegistryCredential" in k for k in query)
        # No cache ever mixes two namespaces' credentials, and none carries team B's.
        for q in emu.recorded("CreateImageCache"):
            if credentials_of(q):
                assert credentials_of(q) == {(REGISTRY, "robot-a")}
                assert tags_of(q)["vk-eci.io/provenance"] == team_a
