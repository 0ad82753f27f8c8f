"""Private images stay private (docs/IMAGE_CACHES.md, docs/SECURITY.md): team A builds an image
cache of its private image with its pull secret through an ImageCache object; a team-B pod with
no pull secret is never started from that cache, by automatic match, by ECI's server-side match
or by naming it. Real control plane, the ECI emulator (the registry is private there: a pull
without team A's credentials is refused) and the node as a process running the ImageCache
controller.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.controlplane import scratch_namespace
from tests.fixtures.node import NodeFactory, NodeProcess, eventually
from tests.integration.test_image_cache_pods import emulator_realtime  # noqa: F401 - fixture
from tests.integration.test_imagecache_controller import (  # noqa: F401 - fixture
    cleanup,
    crd,
    docker_secret,
    get_ic,
    kubectl,
)
from vk_eci.cloud.caches.annotations import AUTO_KEY, EXPLICIT_KEY
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

REGISTRY = "registry.corp.example"
BILLING = f"{REGISTRY}/team-a/billing:v7"


def pod_body(name: str, node: NodeProcess, annotations: dict[str, str],
             pull_secret: str | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            node_name=node.name, restart_policy="Never",
            image_pull_secrets=[client.V1LocalObjectReference(name=pull_secret)]
            if pull_secret else None,
            containers=[client.V1Container(name="billing", image=BILLING,
                                           image_pull_policy="Always")]))


def created(emu: Emulator, namespace: str, pod: str) -> dict[str, str] | None:
    found = [q for q in emu.recorded("CreateContainerGroup")
             if any(v == namespace for k, v in q.items() if k.endswith(".Value"))
             and any(v == pod for k, v in q.items() if k.endswith(".Value"))]
    return found[-1] if found else None


async def events(core: client.CoreV1Api, namespace: str, pod: str) -> dict[str, str]:
    evs = await core.list_namespaced_event(namespace,
                                           field_selector=f"involvedObject.name={pod}")
    return {e.reason: f"{e.type}: {e.message}" for e in evs.items}


async def private_registry(emu: Emulator, cp: Any, team_a: str) -> None:
    """The emulator's registry is private to robot-a; team A's secret ``regcred`` holds it."""
    emu.add_private_registry(REGISTRY, "robot-a", "team-a-password")
    await kubectl(cp, "apply", "-f", "-", input=docker_secret(
        "regcred", team_a, REGISTRY, "robot-a", "team-a-password"))


async def test_team_b_never_starts_team_a_private_image_from_its_cache(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    emu, cp, core = emulator_realtime, crd, client.CoreV1Api(kube_api)
    team_a = namespace
    await private_registry(emu, cp, team_a)
    node = await node_factory(imagecache_controller=True, imagecache_min_relist_age="1",
                              imagecache_shared_pull_namespaces=team_a)
    body = json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": f"billing-{team_a}"},
                       "spec": {"images": [BILLING], "imagePullSecrets": [f"{team_a}:regcred"]}})
    try:
        await kubectl(cp, "create", "-f", "-", input=body)

        async def ready() -> str | None:
            status = ((await get_ic(cp, f"billing-{team_a}")) or {}).get("status") or {}
            return status.get("imageCacheId") if status.get("phase") == "Ready" else None
        cache_id = await eventually(ready, 90, "team A's cache Ready", node)
        [built] = [q for q in emu.recorded("CreateImageCache")
                   if q.get("ImageCacheName") == f"billing-{team_a}"]
        tags = {built[k]: built[k.replace(".Key", ".Value")] for k in built
                if k.startswith("Tag.") and k.endswith(".Key")}
        assert tags["vk-eci.io/provenance"] == team_a
        assert tags["vk-eci.io/credentialed-registries"] == REGISTRY

        with scratch_namespace(cp, f"b-{team_a}") as team_b:
            # Automatic match: not matched, keeps Always, sent with no cache and no
            # server-side match (ECI's would pick team A's cache).
            await core.create_namespaced_pod(team_b, pod_body("auto", node, {AUTO_KEY: "true"}))
            query = await eventually(lambda: _async(created(emu, team_b, "auto")), 60,
                                     "team B's pod created", node)
            assert "ImageSnapshotId" not in query
            assert "AutoMatchImageCache" not in query
            assert {query[k] for k in query if k.endswith(".ImagePullPolicy")} == {"Always"}
            assert not any("ImageRegistryCredential" in k for k in query)
            said = await eventually(lambda: _has(core, team_b, "auto", "NoImageCacheChosen"),
                                    30, "NoImageCacheChosen", node)
            assert REGISTRY in said and cache_id not in said

            # Naming the cache: refused with a clear Warning, the pod stays Pending, no group.
            await core.create_namespaced_pod(team_b, pod_body("named", node,
                                                              {EXPLICIT_KEY: cache_id}))
            said = await eventually(lambda: _has(core, team_b, "named", "ImageCacheNotPermitted"),
                                    60, "ImageCacheNotPermitted", node)
            assert said.startswith("Warning") and REGISTRY in said
            pod = await core.read_namespaced_pod("named", team_b)
            assert pod.status.phase == "Pending"
            assert created(emu, team_b, "named") is None

        # Team A's own pod (its secret) may start from it, and still pulls Always: every
        # start authenticates (AlwaysPullImages keeps its meaning).
        await core.create_namespaced_pod(team_a, pod_body("own", node, {AUTO_KEY: "true"},
                                                          pull_secret="regcred"))
        query = await eventually(lambda: _async(created(emu, team_a, "own")), 60,
                                 "team A's pod created", node)
        assert query["ImageSnapshotId"] == cache_id
        assert {query[k] for k in query if k.endswith(".ImagePullPolicy")} == {"Always"}
    finally:
        await cleanup(cp, f"billing-{team_a}")


async def _async(value: Any) -> Any:
    return value


async def _has(core: client.CoreV1Api, namespace: str, pod: str, reason: str) -> str | None:
    return (await events(core, namespace, pod)).get(reason)
