"""A cache the advisor plans for a private image is built with the pull credentials of the
namespace whose pods asked for it, and is that namespace's (docs/ADVISOR.md "Private images",
docs/IMAGE_CACHES.md "Private images stay private"). Real control plane, the ECI emulator (its
registry is private to team A's robot) and the node as a process running the advisor in apply
mode and the ImageCache controller: team A's automatic-match pods pull the private image with
their pull secret; the advisor's ImageCache names team A's secret; the ``CreateImageCache`` the
emulator saw carries team A's credential and provenance; a team-A pod then starts from it, a
team-B pod without credentials does not; the password is in no log line and no event.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client

from matcher import normalize_image
from tests.fixtures.controlplane import scratch_namespace
from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_cache_build_credentials import credentials_of, tags_of
from tests.integration.test_image_cache_pods import emulator_realtime  # noqa: F401 - fixture
from tests.integration.test_imagecache_advisor import advisor_flags, advisor_owned, imagecaches
from tests.integration.test_imagecache_controller import cleanup, crd  # noqa: F401 - fixture
from tests.integration.test_security_private_images import (
    BILLING,
    REGISTRY,
    _async,
    created,
    pod_body,
    private_registry,
)
from vk_eci.advisor.model import ADVISOR_OWNED_LABEL
from vk_eci.cloud.caches.annotations import AUTO_KEY
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

AUTO = {AUTO_KEY: "true"}
PASSWORD = "team-a-password"  # private_registry's


async def test_advisor_cache_of_a_private_image_carries_its_namespaces_credential_only(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    emu, core, team_a = emulator_realtime, client.CoreV1Api(kube_api), namespace
    await private_registry(emu, crd, team_a)
    node = await node_factory(**advisor_flags(
        team_a, "apply", imagecache_controller=True,
        imagecache_lease_name=f"ic-{uuid.uuid4().hex[:8]}"))
    names: list[str] = []
    try:
        # Repeated demand: three automatic-match pods of team A pull the private image.
        for i in range(3):
            await core.create_namespaced_pod(team_a, pod_body(f"a{i}", node, AUTO,
                                                              pull_secret="regcred"))

        made = await eventually(lambda: advisor_owned(kube_api, node), 90,
                                "an advisor-owned ImageCache", node)
        name = made["metadata"]["name"]
        names.append(name)
        assert made["spec"]["images"] == [normalize_image(BILLING)]
        assert made["spec"]["imagePullSecrets"] == [f"{team_a}:regcred"]

        def built() -> dict[str, str] | None:
            found = [q for q in emu.recorded("CreateImageCache")
                     if q.get("ImageCacheName") == name]
            return found[0] if found else None
        request = await eventually(lambda: _async(built()), 60, "the advisor's CreateImageCache",
                                   node)
        assert credentials_of(request) == {(REGISTRY, "robot-a")}
        tags = tags_of(request)
        assert tags["vk-eci.io/provenance"] == team_a
        assert tags["vk-eci.io/credentialed-registries"] == REGISTRY

        async def ready() -> str | None:
            obj = await client.CustomObjectsApi(kube_api).get_cluster_custom_object(
                "eci.alibabacloud.com", "v1", "imagecaches", name)
            status = obj.get("status") or {}
            return status.get("imageCacheId") if status.get("phase") == "Ready" else None
        cache_id = await eventually(ready, 90, "the advisor's cache Ready", node)

        # Team A's next pod starts from it.
        await core.create_namespaced_pod(team_a, pod_body("a-next", node, AUTO,
                                                          pull_secret="regcred"))
        query = await eventually(lambda: _async(created(emu, team_a, "a-next")), 60,
                                 "team A's next pod created", node)
        assert query.get("ImageSnapshotId") == cache_id

        # Team B's pod, without credentials, never starts from it.
        with scratch_namespace(crd, f"b-{team_a}") as team_b:
            await core.create_namespaced_pod(team_b, pod_body("b", node, AUTO))
            query = await eventually(lambda: _async(created(emu, team_b, "b")), 60,
                                     "team B's pod created", node)
            assert "ImageSnapshotId" not in query and "AutoMatchImageCache" not in query
            assert not any("ImageRegistryCredential" in k for k in query)

        # The password is in no log line and no event (names of secrets are not secrets).
        assert PASSWORD not in node.logs()
        for ns in (team_a, "default"):
            listed = await core.list_namespaced_event(ns)
            assert not [e for e in listed.items if PASSWORD in (e.message or "")]
        # No cache ever mixes credentials: every credentialed build is team A's.
        for q in emu.recorded("CreateImageCache"):
            if credentials_of(q):
                assert tags_of(q)["vk-eci.io/provenance"] == team_a
    finally:
        # Every object this node's advisor made (a later plan may have made another), not only
        # the one looked at: ImageCaches are cluster-scoped and outlive the test's namespace.
        names += [n for n, o in (await imagecaches(kube_api)).items()
                  if (o["metadata"].get("labels") or {}).get(ADVISOR_OWNED_LABEL) == node.name]
        await cleanup(crd, *set(names))
