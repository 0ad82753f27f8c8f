"""Which ECI image caches the ImageCache controller and the node's cache builder may touch
(docs/SECURITY.md, item 6): only those whose tags prove them theirs. The attacks themselves run
end to end in tests/integration/test_imagecache_foreign.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from matcher import REFERENCE_MAX, normalize_image
from tests.unit.cache_fakes import NOW, cache_model
from tests.unit.test_cloud_cache_report import IMAGES, SETTINGS, FakeMaker
from vk_eci.cloud.caches.autocreate import CacheBuilder, cache_name, create_request
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cluster.imagecaches.owner import not_ours
from vk_eci.cluster.imagecaches.spec import (
    TAG_MANAGED_BY,
    TAG_NAME,
    TAG_UID,
    owner_tags,
    spec_from_object,
)

CRD = Path(__file__).parents[2] / "charts/vk-eci/crds/imagecaches.eci.alibabacloud.com.yaml"
UID = "6f1c2a9e-0000-4000-8000-000000000001"
LEGACY = {TAG_MANAGED_BY: "vk-eci", TAG_NAME: "app", TAG_UID: UID}  # before the cluster tag


def cache(tags: dict[str, str]) -> Any:
    return cache_model("imc-x", ["docker.io/library/nginx:latest"], name="app", tags=tags)


@pytest.mark.parametrize("tags", [owner_tags("app", UID, "c1"), LEGACY])
def test_our_caches_and_an_earlier_versions_are_ours(tags: dict[str, str]) -> None:
    assert not_ours(cache(tags), "app", UID, "c1") is None


@pytest.mark.parametrize(("tags", "says"), [
    ({}, "not tagged eci.alibabacloud.com/managed-by=vk-eci"),
    ({"owner": "someone-else"}, "not tagged eci.alibabacloud.com/managed-by=vk-eci"),
    ({**LEGACY, TAG_UID: "other-uid"}, "'other-uid', not this object's UID"),
    ({TAG_MANAGED_BY: "vk-eci", TAG_NAME: "app"}, "None, not this object's UID"),
    ({**LEGACY, TAG_NAME: "other"}, "'other', not 'app'"),
    (owner_tags("app", UID, "c2"), "'c2', not this cluster's 'c1'"),
])
def test_anything_else_is_not_ours_and_says_why(tags: dict[str, str], says: str) -> None:
    why = not_ours(cache(tags), "app", UID, "c1")
    assert why is not None and says in why, why


def test_the_old_default_cluster_is_accepted_only_when_the_name_was_derived() -> None:
    # An earlier version tagged "default"; the object's UID still decides.
    old = owner_tags("app", UID, "default")
    assert not_ours(cache(old), "app", UID, "k8s-abc", "default") is None
    assert not_ours(cache(old), "app", UID, "k8s-abc") is not None
    assert not_ours(cache({**old, TAG_UID: "other-uid"}), "app", UID, "k8s-abc",
                    "default") is not None
    assert not_ours(cache(owner_tags("app", UID, "c2")), "app", UID, "k8s-abc",
                    "default") is not None


def test_an_object_without_uid_owns_nothing() -> None:
    assert not_ours(cache({**LEGACY, TAG_UID: ""}), "app", "", "c1") is not None


def test_long_names_and_clusters_are_tagged_within_ecis_128() -> None:
    tags = owner_tags("n" * 253, UID, "c" * 200)
    assert all(len(v) <= 128 for v in tags.values())
    assert not_ours(cache(tags), "n" * 253, UID, "c" * 200) is None
    assert not_ours(cache(tags), "n" * 252, UID, "c" * 200) is not None


# ---- bounds of spec.images (the CRD and, for objects stored before it, the controller) ----

def longest_reference() -> str:
    name = "registry.example.com/" + "a" * (255 - len("registry.example.com/"))
    return f"{name}:{'t' * 128}@sha512:{'f' * 128}"


def test_reference_max_is_the_longest_reference_the_grammar_accepts() -> None:
    ref = longest_reference()
    assert len(ref) == REFERENCE_MAX == 520
    normalize_image(ref)  # accepted


def test_crd_bounds_images_by_count_and_length() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    images = schema["properties"]["spec"]["properties"]["images"]
    assert images["maxItems"] == 20 and images["items"]["maxLength"] == REFERENCE_MAX
    jsonschema.validate({"spec": {"images": [longest_reference()]}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"images": [longest_reference() + "f"]}}, schema)


@pytest.mark.parametrize(("images", "says"), [
    (["nginx", "x" * 521], r"spec\.images\[1\]: 521 characters .*at most 520"),
    ([f"busybox:{i}" for i in range(21)], r"spec\.images: 21 images, at most 20"),
])
def test_controller_refuses_out_of_bounds_images_naming_the_field(images: list[str],
                                                                  says: str) -> None:
    with pytest.raises(ValueError, match=says):
        spec_from_object({"metadata": {"name": "old", "uid": UID}, "spec": {"images": images}})


# ---- the node's own cache builder ----

async def test_builder_never_takes_a_same_named_cache_it_did_not_build() -> None:
    name = cache_name(IMAGES)
    foreign = cache_model("imc-foreign", ["docker.io/library/redis:7"], name=name,
                          tags={"owner": "someone-else"})
    other_cluster = cache_model("imc-other", IMAGES, name=name,
                                tags={"vk-eci.io/built-by": "node", "vk-eci.io/cluster": "c2"})
    maker = FakeMaker(foreign, other_cluster)
    catalog = CacheCatalog(maker, clock=lambda: NOW)
    await catalog.sync()  # both are in the node's view, as in an account listing
    builder = CacheBuilder(maker, catalog, SETTINGS)
    assert builder.wanted(IMAGES)
    built = await builder.build(IMAGES)
    assert built == "imc-built1" and len(maker.created) == 1
    assert set(maker.caches) == {"imc-foreign", "imc-other", "imc-built1"}
    # A restarted node finds its own, not the others.
    again = CacheBuilder(maker, CacheCatalog(maker, clock=lambda: NOW), SETTINGS)
    assert await again.build(IMAGES) == built and len(maker.created) == 1


def test_builder_client_token_differs_per_cluster() -> None:
    from dataclasses import replace

    other = replace(SETTINGS, cluster_name="c2")
    assert create_request(IMAGES, SETTINGS).client_token != \
        create_request(IMAGES, other).client_token
