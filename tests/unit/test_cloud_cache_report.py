"""What the pod reports is what ECI used: annotations, metrics, disagreements; and
the caches the node builds for constrained pods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from matcher import normalize_image
from tests.unit.cache_fakes import NOW, FakeLister, cache_model
from tests.unit.test_cloud_cache_choice import FLINK, Recorded, pod
from vk_eci.cloud.caches.annotations import (
    AUTO_KEY,
    CHOSEN_CACHE_ANNOTATION,
    CHOSEN_MATCH_ANNOTATION,
    EXPLICIT_KEY,
    MATCH_COUNT_KEY,
    PERFECT_MATCH_KEY,
)
from vk_eci.cloud.caches.autocreate import (
    TAG_BUILT_BY,
    AutoCacheSettings,
    CacheBuilder,
    cache_name,
    create_request,
)
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.decider import PodCacheChooser
from vk_eci.cloud.caches.report import CHOSEN_BY_ANNOTATION, ecis_word
from vk_eci.cloud.groups.allocated import MATCHED_CACHE
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.cloud.placement.node import Placement
from vk_eci.metrics import Metrics


def eci_event(reason: str, message: str) -> GroupEvent:
    return GroupEvent(name="g.1", type="Normal", reason=reason, message=message, count=1,
                      first=None, last=None)


HIT_A = eci_event("SuccessfulHitImageCache", "[eci.imagecache]Successfully hit image cache "
                  "imc-a, eci will be scheduled with this image cache.")
MISSED = eci_event("ImageCacheMissed", "[eci.imagecache]Missed image cache.")
PULLING = eci_event("Pulling", "pulling image")


def test_ecis_word() -> None:
    assert ecis_word([PULLING, HIT_A]) == (True, "imc-a")
    assert ecis_word([MISSED]) == (True, None)
    assert ecis_word([PULLING]) == (False, None)
    assert ecis_word([eci_event("SuccessfulHitImageCache", "Successfully hit image cache "
                                "s-abc12")]) == (True, "s-abc12")


class World:
    def __init__(self, *models: Any) -> None:
        self.lister = FakeLister(*models)
        self.catalog = CacheCatalog(self.lister, clock=lambda: NOW)
        self.recorder = Recorded()
        self.metrics = Metrics()
        self.patched: list[dict[str, str]] = []
        self.chooser = PodCacheChooser(self.catalog, self.recorder, metrics=self.metrics,
                                       annotate=self.annotate)

    async def annotate(self, p: object, annotations: Any) -> None:
        self.patched.append(dict(annotations))

    async def create(self, annotations: dict[str, str], images: Sequence[str] = FLINK) -> Any:
        await self.catalog.sync()
        the_pod = pod(annotations, list(images))
        the_pod.metadata.uid = "u1"
        await self.chooser(the_pod)
        return the_pod

    def results(self, result: str, chosen_by: str) -> float:
        return self.metrics.registry.get_sample_value(
            "vk_eci_image_cache_results_total",
            {"result": result, "chosen_by": chosen_by}) or 0.0

    def disagreements(self) -> float:
        return self.metrics.registry.get_sample_value(
            "vk_eci_image_cache_disagreements_total") or 0.0


async def test_eci_confirming_the_node_choice_is_reported_once() -> None:
    w = World(cache_model("imc-a", FLINK))
    the_pod = await w.create({EXPLICIT_KEY: "imc-a"})
    await w.chooser.group_events(the_pod, [PULLING])  # ECI has not said yet
    assert w.results("hit", "node") == 0 and len(w.patched) == 1
    await w.chooser.group_events(the_pod, [HIT_A])
    await w.chooser.group_events(the_pod, [HIT_A])  # the next listing: already reported
    assert w.results("hit", "node") == 1 and w.disagreements() == 0
    assert w.patched[-1] == {CHOSEN_CACHE_ANNOTATION: "imc-a", CHOSEN_MATCH_ANNOTATION: "3/3",
                             CHOSEN_BY_ANNOTATION: "node", MATCHED_CACHE: "imc-a"}


async def test_listeners_hear_each_report_once_and_a_failing_one_harms_nothing() -> None:
    w = World(cache_model("imc-a", FLINK))
    heard: list[tuple[str, tuple[str, ...], str | None, str]] = []

    def broken(*_: Any) -> None:
        raise RuntimeError("observer bug")

    w.chooser.reporter.listeners += [broken, lambda p, exp, rep: heard.append(
        (p.metadata.uid, exp.images, rep.cache_id, rep.result))]
    the_pod = await w.create({AUTO_KEY: "true"})
    await w.chooser.group_events(the_pod, [HIT_A])
    await w.chooser.group_events(the_pod, [HIT_A])
    assert heard == [("u1", tuple(normalize_image(i) for i in FLINK), "imc-a", "hit")]
    assert w.results("hit", "node") == 1


async def test_server_side_hit_after_a_node_miss_is_a_disagreement_and_the_pod_shows_eci()\
        -> None:
    w = World(cache_model("imc-a", FLINK[:1], status="Creating"))
    the_pod = await w.create({AUTO_KEY: "true"})
    assert w.patched[0][CHOSEN_BY_ANNOTATION] == "eci"  # AutoMatchImageCache was sent
    w.lister.put(cache_model("imc-a", FLINK[:1]))  # ECI knew better: it was Ready
    await w.chooser.group_events(the_pod, [HIT_A])
    assert w.patched[-1] == {CHOSEN_CACHE_ANNOTATION: "imc-a", CHOSEN_MATCH_ANNOTATION: "1/3",
                             CHOSEN_BY_ANNOTATION: "eci", MATCHED_CACHE: "imc-a"}
    assert w.results("partial", "eci") == 1 and w.disagreements() == 1
    [(kind, message)] = [(e[0], e[2]) for e in w.recorder.events
                         if e[1] == "ImageCacheDisagreement"]
    assert kind == "Warning" and "chose image cache none but ECI used imc-a" in message


async def test_a_group_asked_for_no_cache_is_a_miss_as_soon_as_listed() -> None:
    w = World(cache_model("imc-one", FLINK[:1]))
    the_pod = await w.create({AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"})
    await w.chooser.group_events(the_pod, [])
    assert w.results("miss", "node") == 1 and w.disagreements() == 0
    assert w.patched[-1][CHOSEN_CACHE_ANNOTATION] == "none"


class FakeMaker(FakeLister):
    def __init__(self, *models: Any) -> None:
        super().__init__(*models)
        self.created: list[Any] = []

    async def describe_image_caches(self, *, ids: Sequence[str] | None = None,
                                    name: str | None = None) -> list[Any]:
        found = await super().describe_image_caches(ids=ids)
        return [m for m in found if name is None or m.image_cache_name == name]

    async def create_image_cache(self, req: Any) -> str:
        self.created.append(req)
        cache_id = f"imc-built{len(self.created)}"
        self.put(cache_model(cache_id, req.image, name=req.image_cache_name, status="Creating",
                             tags={t.key: t.value for t in req.tag or []}))
        return cache_id


SETTINGS = AutoCacheSettings(Placement(region_id="cn-hangzhou", security_group_id="sg-1",
                                       vswitch_ids=("vsw-1",)), cluster_name="c1", limit=2)
IMAGES = ["docker.io/library/nginx:1.7.9", "docker.io/library/busybox:latest"]


def test_name_and_request_follow_the_image_set() -> None:
    name = cache_name(IMAGES)
    assert name == cache_name(list(reversed(IMAGES))) != cache_name(IMAGES[:1])
    assert name.startswith("vk-eci-busybox-") and len(name) == len("vk-eci-busybox-") + 12
    req = create_request(IMAGES, SETTINGS)
    assert req.image_cache_name == name and req.image == sorted(IMAGES)
    assert req.client_token == create_request(list(reversed(IMAGES)), SETTINGS).client_token
    assert {(t.key, t.value) for t in req.tag} == {
        (TAG_BUILT_BY, "node"), ("vk-eci.io/cluster", "c1"),
        # Built with no credential: anonymous pulls, any pod may start from it.
        ("vk-eci.io/provenance", "none"), ("vk-eci.io/credentialed-registries", "none")}
    assert req.retention_days == 7 and req.v_switch_id == "vsw-1"


async def test_builder_builds_once_per_image_set_and_is_bounded() -> None:
    maker = FakeMaker()
    catalog = CacheCatalog(maker, clock=lambda: NOW)
    builder = CacheBuilder(maker, catalog, SETTINGS)
    first = await builder.build(IMAGES)
    assert first == "imc-built1" and catalog.get(first).status == "Creating"  # type: ignore[union-attr]
    assert not builder.wanted(list(reversed(IMAGES)))
    assert await builder.build(list(reversed(IMAGES))) == first
    # A restarted node (empty memory) adopts the cache of that name instead of a second one.
    again = CacheBuilder(maker, CacheCatalog(maker, clock=lambda: NOW), SETTINGS)
    assert await again.build(IMAGES) == first
    assert len(maker.created) == 1
    assert await builder.build(IMAGES[:1]) == "imc-built2"
    assert await builder.build(["docker.io/library/redis:7"]) is None  # limit 2
    assert await builder.build([f"docker.io/library/i{n}:1" for n in range(21)]) is None
    assert len(maker.created) == 2


@pytest.mark.parametrize("constraint", [{PERFECT_MATCH_KEY: "true"}, {MATCH_COUNT_KEY: "3"}])
async def test_chooser_builds_for_a_constrained_miss_only(constraint: dict[str, str]) -> None:
    maker = FakeMaker(cache_model("imc-one", FLINK[:1]))
    catalog = CacheCatalog(maker, clock=lambda: NOW)
    chooser = PodCacheChooser(catalog, Recorded(), builder=CacheBuilder(maker, catalog,
                                                                        SETTINGS))
    await catalog.sync()
    ctx = await chooser(pod({AUTO_KEY: "true", **constraint}))
    assert ctx.image_snapshot_id is None and not ctx.auto_match_image_cache
    for task in list(chooser._builds):
        await task
    assert [r.image_cache_name for r in maker.created] == [
        cache_name([normalize_image(i) for i in FLINK])]
    await chooser(pod({AUTO_KEY: "true"}))  # unconstrained: ECI's own server-side match
    assert len(maker.created) == 1


async def test_eci_naming_the_snapshot_resolves_to_its_cache() -> None:
    # Real ECI's event may name the cache's snapshot (s-…), as its documentation shows.
    w = World(cache_model("imc-a", FLINK))  # snapshot s-a
    the_pod = await w.create({EXPLICIT_KEY: "imc-a"})
    await w.chooser.group_events(the_pod, [eci_event(
        "SuccessfulHitImageCache", "Successfully hit image cache s-a, eci will be scheduled")])
    assert w.patched[-1][CHOSEN_CACHE_ANNOTATION] == "imc-a"
    assert w.results("hit", "node") == 1 and w.disagreements() == 0


async def test_a_cache_eci_names_but_nobody_knows_is_never_guessed() -> None:
    w = World()
    w.catalog.min_relist_age = 0.0
    the_pod = await w.create({AUTO_KEY: "true"})
    unknown = eci_event("SuccessfulHitImageCache", "Successfully hit image cache s-zz")
    for _ in range(10):
        await w.chooser.group_events(the_pod, [unknown])
    assert len(w.patched) == 1  # only the node's own choice at create time
    total = sum(w.results(r, c) for r in ("hit", "partial", "miss") for c in ("node", "eci"))
    assert total == 0
    assert w.lister.calls.count(None) >= 2  # it re-listed to look for the snapshot


async def test_a_report_that_waits_keeps_ecis_word_after_the_events_are_dropped() -> None:
    """ECI named a cache the node could not find yet: the report waits for a later listing.
    By then the node holds the group without its events (dropped once copied), so the report
    must remember what ECI said."""
    w = World(cache_model("imc-a", FLINK))
    the_pod = await w.create({EXPLICIT_KEY: "imc-a"})
    hit_b = eci_event("SuccessfulHitImageCache", "[eci.imagecache]Successfully hit image "
                      "cache imc-b, eci will be scheduled with this image cache.")
    await w.chooser.group_events(the_pod, [PULLING, hit_b])
    assert w.results("hit", "node") == 0  # imc-b is not known yet: no guess
    w.lister.put(cache_model("imc-b", FLINK))
    await w.chooser.group_events(the_pod, [])  # the next listing: the events are gone
    assert w.results("hit", "node") == 1 and w.disagreements() == 1
    assert w.patched[-1][CHOSEN_CACHE_ANNOTATION] == "imc-b"
