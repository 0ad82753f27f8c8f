"""Caches the node builds carry the asking pod's own pull credentials, and are that
namespace's (docs/IMAGE_CACHES.md, "Private images stay private")."""

from __future__ import annotations

from kubernetes_asyncio.client import (
    V1Container,
    V1LocalObjectReference,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
)

from tests.unit.test_cloud_cache_choice import Recorded
from tests.unit.test_cloud_cache_report import SETTINGS, FakeMaker
from vk_eci.cloud.caches.annotations import AUTO_KEY, PERFECT_MATCH_KEY
from vk_eci.cloud.caches.autocreate import BuildFor, CacheBuilder, cache_name, create_request
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.decider import PodCacheChooser
from vk_eci.cloud.translation.credentials import RegistryCredential

REGISTRY = "registry.corp.example"
PRIVATE = f"{REGISTRY}/team-a/billing:v7"
PUBLIC = "docker.io/library/busybox:1.36"
A_CRED = RegistryCredential(REGISTRY, "robot-a", "pw-a")
B_CRED = RegistryCredential(REGISTRY, "robot-b", "pw-b")
OTHER = RegistryCredential("quay.io", "robot-q", "pw-q")
NOW = 1_700_000_000.0


def tags(req: object) -> dict[str, str]:
    return {t.key: t.value for t in getattr(req, "tag", None) or []}


def test_request_carries_only_the_credentials_its_images_need_and_says_whose() -> None:
    owner = BuildFor("team-a", (A_CRED, OTHER)).for_images([PRIVATE, PUBLIC])
    req = create_request([PRIVATE, PUBLIC], SETTINGS, owner)
    assert [(c.server, c.user_name, c.password) for c in req.image_registry_credential] == [
        (REGISTRY, "robot-a", "pw-a")]  # quay.io's secret stays in the cluster
    assert tags(req)["vk-eci.io/provenance"] == "team-a"
    assert tags(req)["vk-eci.io/credentialed-registries"] == REGISTRY
    # Without a credential its images need: anonymous, as before.
    anon = create_request([PUBLIC], SETTINGS, BuildFor("team-a", (A_CRED,)).for_images([PUBLIC]))
    assert anon.image_registry_credential is None
    assert tags(anon)["vk-eci.io/provenance"] == "none"
    assert anon.image_cache_name == cache_name([PUBLIC])


def test_two_namespaces_never_share_one_credentialed_cache() -> None:
    images = [PRIVATE]
    a = BuildFor("team-a", (A_CRED,))
    b = BuildFor("team-b", (B_CRED,))
    names = {cache_name(images), cache_name(images, a), cache_name(images, b)}
    assert len(names) == 3
    tokens = {create_request(images, SETTINGS, o).client_token
              for o in (BuildFor(), a, b)}
    assert len(tokens) == 3


async def test_builder_builds_once_per_namespace_with_its_own_credentials() -> None:
    maker = FakeMaker()
    catalog = CacheCatalog(maker, clock=lambda: NOW)
    builder = CacheBuilder(maker, catalog, SETTINGS)
    a = BuildFor("team-a", (A_CRED,))
    first = await builder.build([PRIVATE], a)
    assert not builder.wanted([PRIVATE], a) and builder.wanted([PRIVATE], BuildFor("team-b",
                                                                                    (B_CRED,)))
    assert await builder.build([PRIVATE], a) == first
    second = await builder.build([PRIVATE], BuildFor("team-b", (B_CRED,)))
    assert second != first
    [ra, rb] = maker.created
    assert [c.user_name for c in ra.image_registry_credential] == ["robot-a"]
    assert [c.user_name for c in rb.image_registry_credential] == ["robot-b"]
    assert tags(ra)["vk-eci.io/provenance"] == "team-a"
    assert tags(rb)["vk-eci.io/provenance"] == "team-b"
    info = catalog.get(first)
    assert info is not None and dict(info.tags)["vk-eci.io/provenance"] == "team-a"


def private_pod(namespace: str, secret: bool) -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name="p", namespace=namespace,
                              annotations={AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"}),
        spec=V1PodSpec(
            image_pull_secrets=[V1LocalObjectReference(name="regcred")] if secret else None,
            containers=[V1Container(name="c", image=PRIVATE, image_pull_policy="Always")]))


async def test_a_private_image_cached_for_a_namespace_serves_that_namespace_only() -> None:
    maker = FakeMaker()
    catalog = CacheCatalog(maker, clock=lambda: NOW)
    chooser = PodCacheChooser(catalog, Recorded(), builder=CacheBuilder(maker, catalog,
                                                                        SETTINGS))
    await catalog.sync()
    ctx = await chooser(private_pod("team-a", True), (A_CRED,))
    assert ctx.image_snapshot_id is None  # the first pod misses; the node builds
    for task in list(chooser._builds):
        await task
    [req] = maker.created
    assert [c.user_name for c in req.image_registry_credential] == ["robot-a"]
    built = next(iter(maker.caches.values()))
    built.status = "Ready"
    await catalog.sync()
    again = await chooser(private_pod("team-a", True), (A_CRED,))
    assert again.image_snapshot_id == built.image_cache_id
    # Its container keeps Always: every start authenticates.
    assert not again.pull_policy_overrides
    other = await chooser(private_pod("team-b", False), ())
    assert other.image_snapshot_id is None and not other.auto_match_image_cache
