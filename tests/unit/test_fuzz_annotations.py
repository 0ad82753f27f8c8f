"""Property-based fuzzing of what tenants write as text: annotations and image refs.

Annotations: any map of the keys the node reads (and others), with arbitrary values, parses to
values plus named problems, and through the provider's checks and a full translation yields a
request or an :class:`InvalidInput`, and through the image-cache decision a decision or one
of the project's :class:`EciError`; never any other exception. Image references: any string
normalises or raises :class:`InvalidReference` naming it; the normal form is a fixed point.
Bounded for CI (the ``ci`` profile is derandomized, tests/conftest.py).
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client import (
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
)

from matcher import InvalidReference, normalize_image
from tests.unit.cache_fakes import NOW, FakeLister, cache_model
from tests.unit.test_cloud_translate import ctx, pod
from vk_eci.cloud.api.errors import EciError, InvalidInput
from vk_eci.cloud.caches.annotations import parse_cache_request
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.cloud.caches.decision import CacheDecision
from vk_eci.cloud.placement import annotations as pa
from vk_eci.cloud.placement.specs import INSTANCE_TYPE_ANNOTATION, USE_SPECS_ANNOTATION
from vk_eci.cloud.placement.values import InvalidAnnotation
from vk_eci.cloud.translation.pod import translate

CACHE_KEYS = ["k8s.aliyun.com/eci-image-snapshot-id", "k8s.aliyun.com/eci-imc-id",
              "k8s.aliyun.com/eci-image-cache", "k8s.aliyun.com/eci-auto-imc",
              "k8s.aliyun.com/imc-perfect-match", "k8s.aliyun.com/imc-match-count-request",
              "k8s.aliyun.com/pod-fail-on-create-err"]
KEYS = sorted({*pa.FIELDS, pa.CUSTOM_TAGS, pa.ACR_IDS, pa.ACR_ID, pa.FAMILY, pa.GENERATION,
               INSTANCE_TYPE_ANNOTATION, USE_SPECS_ANNOTATION, *CACHE_KEYS})

# Values that sit on the parsers' edges: numbers in every spelling, flags, ids, lists.
TRICKY = ["", " ", "true", "TRUE ", "false", "0", "1", "-1", "1.5", "1e3", "1e999", "NaN",
          "Infinity", "-0", "0.0001", "9" * 40, "\u0661\u0662", "\u00b2", "\u00bd", "0x10",
          "1_000", "40M", "0G",
          "50Gi", "1Ti", "2049Gi", "500m", "imc-abc", "imc-", "vsw-a,vsw-b", "sg-1", ",,",
          "a:b,c:d", "a:b,c:d,e:f,g:h", "aliyun:x", ":", "cri-1", "cn-hangzhou:cri-1",
          "ecs.c6.large", "ecs.c6.large,ecs.g6.large", "2-4Gi", "2-4Gi,ecs.c6.large", "0-0Gi",
          "c6,g6", "6,7", "/tmp/core", "|/bin/sh", "10.0.0.1,ntp.aliyun.com", "[::1]:5000",
          "SpotAsPriceGo", "SpotWithPriceLimit", "economy,general", "tesla=470.82.01",
          "\x00", "\ud800", "\u200b"]

values = st.sampled_from(TRICKY) | st.text(max_size=24) | st.builds(
    ",".join, st.lists(st.sampled_from(TRICKY), max_size=4))
annotation_maps = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), values,
                                  max_size=8)
sizes = st.sampled_from([None, "0", "100m", "1", "2", "64", "65", "1.5", "1e2", "0.001"])
memories = st.sampled_from([None, "0", "1Mi", "512Mi", "2Gi", "4G", "1Ti", "1e10"])


def _containers(cpu: str | None, memory: str | None, gpu: str | None) -> list[V1Container]:
    limits = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("nvidia.com/gpu", gpu))
              if v is not None}
    return [V1Container(name="app", image="nginx:1.25",
                        resources=V1ResourceRequirements(limits=limits or None))]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(annotation_maps)
@example({pa.SPOT_PRICE_LIMIT: "1e999", pa.SPOT_STRATEGY: "SpotWithPriceLimit"})
@example({pa.EPHEMERAL: "1e999"})
@example({pa.FIXED_IP_RETAIN: "\u0661\u0662"})
def test_annotation_maps_parse_to_values_or_named_problems(annotations: dict[str, str]) -> None:
    placement = pa.parse_placement(annotations)
    for problem in placement.problems:
        assert isinstance(problem, InvalidAnnotation)
        assert problem.key in annotations and problem.value == annotations[problem.key]
        assert problem.reason and problem.key in problem.message()
    try:
        pa.check_placement(placement)
    except InvalidInput as err:
        assert placement.problems and err.thing.startswith("annotation ")
    else:
        assert not placement.problems
    cache = parse_cache_request(annotations)
    for problem in cache.problems:
        assert problem.key in annotations and problem.value == annotations[problem.key]
    assert cache.min_matched >= 1


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(annotation_maps, sizes, memories, st.sampled_from([None, "0", "1", "2", "0.5", "x"]))
@example({pa.FAMILY: "c6", USE_SPECS_ANNOTATION: "2-4Gi"}, "1", "2Gi", None)
@example({USE_SPECS_ANNOTATION: "ecs.gn6i-c4g1.xlarge"}, None, None, "1")
@example({pa.EPHEMERAL: "1e999"}, None, None, None)
def test_annotated_pods_translate_to_a_request_or_a_named_error(
        annotations: dict[str, str], cpu: str | None, memory: str | None,
        gpu: str | None) -> None:
    p = pod(_containers(cpu, memory, gpu))
    p.metadata = V1ObjectMeta(name="web-1", namespace="shop", uid="u-1",
                              annotations=annotations)
    try:
        pa.check_placement(pa.parse_placement(annotations))  # the provider's check first
        request = translate(p, ctx()).request
    except InvalidInput as err:
        assert err.thing and err.reason
        return
    request.to_map()  # the SDK can encode what we built


CACHES = [cache_model("imc-ready", ["nginx:1.25", "busybox:1.36"]),
          cache_model("imc-building", ["nginx:1.25"], status="Creating", progress="10%"),
          cache_model("imc-old", ["redis:7"], expires=NOW - 60)]
CACHE_IDS = ["imc-ready", "imc-building", "imc-old", "imc-gone", "imc-", "IMC-READY"]
cache_maps = st.dictionaries(st.sampled_from(CACHE_KEYS),
                             st.sampled_from(CACHE_IDS + TRICKY) | values, max_size=4)
pod_images = st.lists(st.sampled_from(["nginx:1.25", "busybox:1.36", "redis:7", "Bad/Ref", "",
                                       "nginx@sha256:" + "a" * 64]) | st.text(max_size=8),
                      min_size=1, max_size=3)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(cache_maps, pod_images)
def test_cache_annotations_decide_or_raise_a_named_error(annotations: dict[str, str],
                                                         images: list[str]) -> None:
    p = V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", annotations=annotations),
              spec=V1PodSpec(containers=[V1Container(name=f"c{i}", image=image)
                                         for i, image in enumerate(images)]))

    async def decide() -> CacheDecision:
        catalog = CacheCatalog(FakeLister(*CACHES), clock=lambda: NOW)
        await catalog.sync()
        return await decide_for_pod(p, catalog, now=NOW)

    try:
        decision = asyncio.run(decide())
    except EciError as err:  # ImageCacheUnavailable (Pending, retried) or a refusal
        assert err.message
        return
    for planned in decision.events:
        assert planned.reason and planned.message
    if decision.image_snapshot_id is not None:
        assert decision.cache_id in CACHE_IDS


# -- image references -------------------------------------------------------------------------

REF_ALPHABET = "abcxyz019ABZ._-/:@[]"
references = (st.text(max_size=60)
              | st.text(alphabet=REF_ALPHABET, max_size=60)
              | st.builds(lambda host, path, tag: f"{host}{path}{tag}",
                          st.sampled_from(["", "localhost/", "docker.io/", "Index.Docker.IO/",
                                           "registry-vpc.cn-hangzhou.aliyuncs.com/",
                                           "x-registry-vpc.cn-beijing.cr.aliyuncs.com/",
                                           "reg.io:5000/", "reg.io:0/", "[::1]:443/",
                                           "reg.io:\u0665/", "Reg.IO/"]),
                          st.text(alphabet="abc019._-/", min_size=1, max_size=30),
                          st.sampled_from(["", ":latest", ":v1.2", ":-x", ":" + "t" * 129,
                                           "@sha256:" + "a" * 64, "@sha256:" + "A" * 64,
                                           "@md5:00", ":v1@sha512:" + "0" * 128])))


@settings(max_examples=500)
@given(references)
@example("reg.io:\u0665/app")
@example("a" * 300)
def test_any_string_normalises_or_is_refused_naming_it(ref: str) -> None:
    try:
        normal = normalize_image(ref)
    except InvalidReference as err:
        assert err.reference == ref and err.reason
        assert repr(ref[:300])[:-1] in str(err)
        return
    assert normalize_image(normal) == normal, "the normal form is a fixed point"
    assert "/" in normal and (":" in normal.rsplit("/", 1)[-1] or "@" in normal)


