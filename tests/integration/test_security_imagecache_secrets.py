"""ImageCache pull secrets of another namespace (docs/SECURITY.md, cluster/imagecaches/secrets.py):
the controller refuses them unless the operator shares the namespace or trusts the admission
webhook's review, and never tells the author more than "not usable"; the webhook's check is a
real SubjectAccessReview of the requesting user. Real control plane, the ECI emulator, the
controller in this process.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.controlplane import scratch_namespace
from tests.integration.test_imagecache_controller import (  # noqa: F401 - fixture
    cleanup,
    crd,
    docker_secret,
    eci_client,
    eventually,
    get_ic,
    kubectl,
    object_events,
    running,
    settings,
)
from vk_eci.cluster.imagecaches.controller import ImageCacheController
from vk_eci.cluster.imagecaches.secrets import (
    NOT_USABLE,
    Requester,
    SecretPolicy,
    may_use_secret,
    reviewed_annotation,
)

pytestmark = pytest.mark.integration

REGISTRY = "registry.corp.example"
IMAGE = f"{REGISTRY}/team-a/billing:v7"


def image_cache(name: str, refs: list[str], annotations: dict[str, str] | None = None) -> str:
    return json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": name, "annotations": annotations or {}},
                       "spec": {"images": [IMAGE], "imagePullSecrets": refs}})


async def team_a_registry(cp: Any, emu: Any, team_a: str) -> None:
    """The emulator's registry refuses pulls without team A's credentials, held in
    ``team_a:regcred``."""
    emu.add_private_registry(REGISTRY, "robot-a", "team-a-password")
    await kubectl(cp, "apply", "-f", "-", input=docker_secret(
        "regcred", team_a, REGISTRY, "robot-a", "team-a-password"))


async def message_of(cp: Any, name: str) -> str | None:
    status = ((await get_ic(cp, name)) or {}).get("status") or {}
    return status.get("message") if status.get("reason") == "InvalidImagePullSecret" else None


async def test_another_namespaces_secret_is_not_usable_and_leaks_nothing(
        crd: Any, kube_api: Any, emulator_realtime: Any, namespace: str) -> None:  # noqa: F811
    cp, emu, team_a = crd, emulator_realtime, namespace
    await team_a_registry(cp, emu, team_a)
    await kubectl(cp, "create", "secret", "generic", "opaque", "-n", team_a,
                  "--from-literal=password=hunter2")
    exists, missing, wrong_type, forged = (f"{team_a}-exists", f"{team_a}-missing",
                                           f"{team_a}-opaque", f"{team_a}-forged")
    controller = ImageCacheController(kube_api, eci_client(emu), identity="node-a",
                                      settings=settings())
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-", input=image_cache(exists, [f"{team_a}:regcred"]))
            await kubectl(cp, "create", "-f", "-", input=image_cache(missing, [f"{team_a}:nope"]))
            await kubectl(cp, "create", "-f", "-",
                          input=image_cache(wrong_type, [f"{team_a}:opaque"]))
            # The author writes the webhook's annotation itself: not trusted by default.
            await kubectl(cp, "create", "-f", "-", input=image_cache(
                forged, [f"{team_a}:regcred"], reviewed_annotation([f"{team_a}:regcred"])))
            said = {}
            for name, ref in ((exists, "regcred"), (missing, "nope"), (wrong_type, "opaque"),
                              (forged, "regcred")):
                said[name] = await eventually(lambda n=name: message_of(cp, n), 30,
                                              f"{name} refused")
                assert said[name] == f"image pull secret {team_a}:{ref}: {NOT_USABLE}"
            events = json.dumps([await object_events(cp, n) for n in said])
            for leak in ("not found", "forbidden", "Opaque", "dockerconfigjson", "hunter2",
                         "team-a-password"):
                assert leak not in events
            assert emu.recorded("CreateImageCache") == []
    finally:
        await cleanup(cp, exists, missing, wrong_type, forged)


async def test_reviewed_at_admission_is_used_when_the_operator_trusts_the_webhook(
        crd: Any, kube_api: Any, emulator_realtime: Any, namespace: str) -> None:  # noqa: F811
    cp, emu, team_a = crd, emulator_realtime, namespace
    await team_a_registry(cp, emu, team_a)
    name = f"{team_a}-reviewed"
    controller = ImageCacheController(
        kube_api, eci_client(emu), identity="node-a",
        settings=settings(secret_policy=SecretPolicy(trust_admission=True)))
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-", input=image_cache(
                name, [f"{team_a}:regcred"], reviewed_annotation([f"{team_a}:regcred"])))

            async def ready() -> Any:
                status = ((await get_ic(cp, name)) or {}).get("status") or {}
                return status if status.get("phase") == "Ready" else None
            await eventually(ready, 60, "Ready")
            [made] = emu.recorded("CreateImageCache")
            assert made["ImageRegistryCredential.1.Server"] == REGISTRY
    finally:
        await cleanup(cp, name)


async def test_may_use_secret_asks_the_api_server_for_the_requesting_user(
        kube_api: Any, namespace: str, control_plane: Any) -> None:
    """The webhook's check: a SubjectAccessReview of `get` on the secret for the user."""
    team_a = namespace
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "read-regcred", "namespace": team_a},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                       "resourceNames": ["regcred"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "alice-regcred", "namespace": team_a},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "read-regcred"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "alice"}]}
    for obj in (role, binding):
        await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-",
                                input=json.dumps(obj))
    authz = client.AuthorizationV1Api(kube_api)

    async def review(body: dict[str, Any]) -> dict[str, Any]:
        answer = await authz.create_subject_access_review(body)
        return dict(kube_api.sanitize_for_serialization(answer))

    alice, bob = Requester("alice", groups=("system:authenticated",)), Requester("bob")
    assert await may_use_secret(review, alice, f"{team_a}:regcred")
    assert not await may_use_secret(review, alice, f"{team_a}:other")
    assert not await may_use_secret(review, bob, f"{team_a}:regcred")
    with scratch_namespace(control_plane, f"s-{team_a}") as shared:
        assert await may_use_secret(review, bob, f"{shared}:any", shared_namespaces=[shared])
