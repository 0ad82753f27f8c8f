"""Private images stay private: which caches a pod may start from, by provenance
(docs/IMAGE_CACHES.md, "Private images stay private"; docs/SECURITY.md)."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from tests.unit.cache_fakes import NOW, FakeLister, cache_model
from vk_eci.cloud.api.errors import Permanent, Retryable
from vk_eci.cloud.caches.annotations import AUTO_KEY, EXPLICIT_KEY
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.cloud.caches.decision import CacheChoiceSettings, CacheDecision
from vk_eci.cloud.caches.provenance import (
    covers,
    provenance_tags,
    registries_of_servers,
    registry_of_server,
)

BILLING = "registry.corp.example/team-a/billing:v7"
NGINX = "nginx:1.25"
TEAM_A = provenance_tags(["team-a"], ["https://registry.corp.example/v2/"])
PUBLIC = provenance_tags([], [])
CORP = frozenset({"registry.corp.example"})


def pod(annotations: dict[str, str], images: list[str], policy: str = "Always") -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace="team-b", annotations=annotations),
                 spec=V1PodSpec(containers=[V1Container(name=f"c{i}", image=img,
                                                        image_pull_policy=policy)
                                            for i, img in enumerate(images)]))


async def decide(annotations: dict[str, str], images: list[str], *models: object,
                 credentials: frozenset[str] = frozenset(),
                 settings: CacheChoiceSettings | None = None) -> CacheDecision:
    catalog = CacheCatalog(FakeLister(*models), clock=lambda: NOW)
    await catalog.sync()
    return await decide_for_pod(pod(annotations, images), catalog, settings=settings, now=NOW,
                                credentials=credentials)


def test_tags_say_whose_credentials_and_for_which_registries() -> None:
    assert TAG_VALUES(TEAM_A) == ("team-a", "registry.corp.example")
    assert TAG_VALUES(PUBLIC) == ("none", "none")
    # Docker Hub's many spellings are one registry; too long a list is the strict "*".
    assert registry_of_server("https://index.docker.io/v1/") == "docker.io"
    many = [f"r{i}.registry.example" for i in range(20)]
    assert TAG_VALUES(provenance_tags(["a"], many))[1] == "*"


def TAG_VALUES(tags: dict[str, str]) -> tuple[str, str]:
    return tags["vk-eci.io/provenance"], tags["vk-eci.io/credentialed-registries"]


async def test_auto_never_matches_a_cache_built_with_credentials_the_pod_lacks() -> None:
    decision = await decide({AUTO_KEY: "true"}, [BILLING],
                            cache_model("imc-a", [BILLING], tags=TEAM_A))
    assert decision.image_snapshot_id is None
    assert not decision.auto_match_image_cache  # ECI's own match would pick it
    assert decision.pull_policy_overrides == {}
    message = " ".join(e.message for e in decision.events)
    assert "registry.corp.example" in message and "imc-a" not in message


async def test_a_cache_holding_one_private_image_is_refused_for_a_public_one() -> None:
    """The cache's disk holds team A's image too: team B's nginx pod is not started from it,
    nor left to ECI's server-side match (which would take the overlap)."""
    decision = await decide({AUTO_KEY: "true"}, [NGINX],
                            cache_model("imc-a", [BILLING, NGINX], tags=TEAM_A))
    assert decision.image_snapshot_id is None and not decision.auto_match_image_cache


async def test_with_credentials_it_matches_but_keeps_always() -> None:
    decision = await decide({AUTO_KEY: "true"}, [BILLING, NGINX],
                            cache_model("imc-a", [BILLING, NGINX], tags=TEAM_A),
                            credentials=CORP)
    assert decision.image_snapshot_id == "imc-a"
    # nginx (public) may pull from the cache; billing re-authenticates at every start.
    assert decision.pull_policy_overrides == {"c1": "IfNotPresent"}


async def test_untagged_cache_of_a_known_private_registry_is_refused() -> None:
    """A console-made cache (no provenance) of a registry another cache needed credentials
    for: treated as private."""
    decision = await decide({AUTO_KEY: "true"}, [BILLING],
                            cache_model("imc-a", [BILLING], tags=TEAM_A),
                            cache_model("imc-console", [BILLING], size=10))
    assert decision.image_snapshot_id is None


async def test_anonymous_and_untagged_public_caches_still_match() -> None:
    decision = await decide({AUTO_KEY: "true"}, [NGINX],
                            cache_model("imc-a", [BILLING], tags=TEAM_A),
                            cache_model("imc-pub", [NGINX], tags=PUBLIC))
    assert decision.image_snapshot_id == "imc-pub"
    assert decision.pull_policy_overrides == {"c0": "IfNotPresent"}
    untagged = await decide({AUTO_KEY: "true"}, [NGINX], cache_model("imc-old", [NGINX]))
    assert untagged.image_snapshot_id == "imc-old"


async def test_operator_listed_registry_needs_credentials_whatever_the_tags() -> None:
    settings = CacheChoiceSettings(private_registries=CORP)
    decision = await decide({AUTO_KEY: "true"}, [BILLING],
                            cache_model("imc-x", [BILLING], tags=PUBLIC), settings=settings)
    assert decision.image_snapshot_id is None and not decision.auto_match_image_cache


async def test_a_refused_cache_does_not_hide_a_permitted_one() -> None:
    decision = await decide({AUTO_KEY: "true"}, [BILLING, NGINX],
                            cache_model("imc-a", [BILLING, NGINX], size=20, tags=TEAM_A),
                            cache_model("imc-pub", [NGINX], size=30, tags=PUBLIC))
    assert decision.image_snapshot_id == "imc-pub"


async def test_a_pod_with_credentials_gets_no_server_side_match() -> None:
    """ECI's server-side auto-create would build an untagged cache with the pod's
    credentials."""
    decision = await decide({AUTO_KEY: "true"}, [NGINX], credentials=CORP)
    assert not decision.auto_match_image_cache
    plain = await decide({AUTO_KEY: "true"}, [NGINX])
    assert plain.auto_match_image_cache


async def test_explicit_cache_without_credentials_blocks_with_a_clear_event() -> None:
    decision = await decide({EXPLICIT_KEY: "imc-a"}, [BILLING],
                            cache_model("imc-a", [BILLING], tags=TEAM_A))
    assert decision.blocked and decision.image_snapshot_id is None
    [event] = [e for e in decision.events if e.reason == "ImageCacheNotPermitted"]
    assert event.type == "Warning" and "registry.corp.example" in event.message
    with pytest.raises(Retryable) as waiting:
        decision.raise_if_blocked("team-b/p")
    assert waiting.value.code == "ImageCacheNotPermitted"
    with pytest.raises(Permanent):
        decision.raise_if_blocked("team-b/p", fail=True)
    allowed = await decide({EXPLICIT_KEY: "imc-a"}, [BILLING],
                           cache_model("imc-a", [BILLING], tags=TEAM_A), credentials=CORP)
    assert allowed.image_snapshot_id == "imc-a" and allowed.pull_policy_overrides == {}


def test_an_update_with_new_credentials_is_not_covered_by_the_tags() -> None:
    assert covers(TEAM_A, ["registry.corp.example"])
    assert not covers(TEAM_A, ["other.example"])
    assert not covers(PUBLIC, ["registry.corp.example"])
    assert covers(PUBLIC, [])
    assert registries_of_servers(["registry-vpc.cn-hangzhou.aliyuncs.com"]) == \
        registries_of_servers(["registry.cn-hangzhou.aliyuncs.com"])
