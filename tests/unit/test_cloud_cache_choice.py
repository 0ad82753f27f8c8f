"""Which cache a pod starts from, the events, annotations and metrics."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from tests.unit.cache_fakes import NOW, FakeLister, cache_model
from vk_eci.cloud.api.errors import InvalidInput, Permanent, Retryable
from vk_eci.cloud.caches.annotations import (
    AUTO_KEY,
    CHOSEN_CACHE_ANNOTATION,
    CHOSEN_MATCH_ANNOTATION,
    EXPLICIT_ALIAS,
    EXPLICIT_KEY,
    MATCH_COUNT_KEY,
    PERFECT_MATCH_KEY,
)
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.cloud.caches.decision import CacheChoiceSettings, CacheDecision, ImageCacheUnavailable
from vk_eci.cloud.caches.pull_policy import PullPolicyMode
from vk_eci.cloud.caches.report import CHOSEN_BY_ANNOTATION
from vk_eci.metrics import Metrics

FLINK = ["flink:1.17", "busybox:1.36", "redis:7"]


def pod(annotations: dict[str, str], images: list[str] = FLINK,
        policy: str | None = "IfNotPresent") -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name="p", namespace="ns", annotations=annotations),
        spec=V1PodSpec(containers=[V1Container(name=f"c{i}", image=img, image_pull_policy=policy)
                                   for i, img in enumerate(images)]))


async def decide(annotations: dict[str, str], *models: object, images: list[str] = FLINK,
                 settings: CacheChoiceSettings | None = None, metrics: Metrics | None = None,
                 policy: str | None = "IfNotPresent",
                 lister: FakeLister | None = None) -> CacheDecision:
    lister = lister or FakeLister(*models)
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    await catalog.sync()
    return await decide_for_pod(pod(annotations, images, policy), catalog, settings=settings,
                                metrics=metrics, now=NOW)


def reasons(decision: CacheDecision) -> list[str]:
    return [e.reason for e in decision.events]


def event(decision: CacheDecision, reason: str) -> str:
    [message] = [e.message for e in decision.events if e.reason == reason]
    return message


async def test_no_annotation_no_cache() -> None:
    d = await decide({}, cache_model("imc-a", FLINK))
    assert d.mode is None and d.image_snapshot_id is None and not d.auto_match_image_cache
    assert d.events == () and d.annotations == {}


# -- explicit --------------------------------------------------------------------------

async def test_explicit_ready_hit() -> None:
    d = await decide({EXPLICIT_KEY: "imc-a"}, cache_model("imc-a", FLINK, size=30))
    assert (d.mode, d.result, d.image_snapshot_id) == ("explicit", "hit", "imc-a")
    assert not d.auto_match_image_cache and not d.blocked
    assert d.annotations == {CHOSEN_CACHE_ANNOTATION: "imc-a", CHOSEN_MATCH_ANNOTATION: "3/3"}
    msg = event(d, "ImageCacheChosen")
    assert "imc-a" in msg and "3/3" in msg and "30 GiB" in msg
    d.raise_if_blocked("ns/p")  # does not raise


async def test_explicit_alias_partial() -> None:
    d = await decide({EXPLICIT_ALIAS: "imc-a"}, cache_model("imc-a", FLINK[:2]))
    assert d.result == "partial" and d.matched == 2 and d.total == 3
    assert d.missing == ("docker.io/library/redis:7",)
    assert d.annotations[CHOSEN_MATCH_ANNOTATION] == "2/3"
    assert "redis" in event(d, "ImageCacheChosen")


async def test_explicit_holding_nothing_is_used_with_a_warning() -> None:
    d = await decide({EXPLICIT_KEY: "imc-a"}, cache_model("imc-a", ["nginx:1"]))
    assert d.result == "miss" and d.image_snapshot_id == "imc-a"
    assert "none of the pod's 3 images" in event(d, "ImageCacheHoldsNoImage")


@pytest.mark.parametrize("status,expires,state", [
    ("Creating", None, "Creating"), ("Failed", None, "Failed"),
    ("UpdateFailed", None, "UpdateFailed"), ("Ready", NOW, "Expired")])
async def test_explicit_not_ready_blocks(status: str, expires: float | None, state: str) -> None:
    d = await decide({EXPLICIT_KEY: "imc-a"},
                     cache_model("imc-a", FLINK, status=status, expires=expires))
    assert d.blocked and d.result == "not_ready" and d.image_snapshot_id is None
    assert d.cache_state == state and d.annotations == {}
    msg = event(d, "ImageCacheNotReady")
    assert "imc-a" in msg and state in msg and "Pending" in msg
    with pytest.raises(ImageCacheUnavailable) as raised:
        d.raise_if_blocked("ns/p")
    assert isinstance(raised.value, Retryable)
    assert raised.value.cache_id == "imc-a" and raised.value.state == state
    assert raised.value.code == "ImageCacheNotReady" and raised.value.retry_after == 5.0


async def test_explicit_unknown_is_refreshed_then_not_found() -> None:
    lister = FakeLister()
    d = await decide({EXPLICIT_KEY: "imc-nope"}, lister=lister)
    assert lister.calls == [None, ("imc-nope",)]
    assert d.blocked and d.result == "not_found"
    assert "imc-nope" in event(d, "ImageCacheNotFound")
    with pytest.raises(ImageCacheUnavailable, match="imc-nope"):
        d.raise_if_blocked("ns/p")


async def test_explicit_unknown_at_sync_but_made_since_is_found() -> None:
    lister = FakeLister()
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    await catalog.sync()
    lister.put(cache_model("imc-new", FLINK))  # made in the console after the last sync
    d = await decide_for_pod(pod({EXPLICIT_KEY: "imc-new"}), catalog, now=NOW)
    assert d.result == "hit" and d.image_snapshot_id == "imc-new"


async def test_malformed_explicit_id_blocks_as_invalid_input() -> None:
    lister = FakeLister()
    d = await decide({EXPLICIT_KEY: "s-123"}, lister=lister)
    assert lister.calls == [None]  # no point asking ECI about it
    assert d.blocked and d.result == "not_found"
    assert 's-123' in event(d, "InvalidAnnotation")
    with pytest.raises(InvalidInput) as raised:
        d.raise_if_blocked("ns/p")
    assert raised.value.code == "InvalidAnnotation" and "ns/p" in str(raised.value)


async def test_both_annotations_explicit_wins_and_says_so() -> None:
    d = await decide({EXPLICIT_KEY: "imc-big", AUTO_KEY: "true"},
                     cache_model("imc-big", FLINK, size=100), cache_model("imc-small", FLINK))
    assert d.mode == "explicit" and d.image_snapshot_id == "imc-big"
    assert "wins" in event(d, "ImageCacheAnnotation")


# -- automatic -------------------------------------------------------------------------

async def test_auto_prefers_overlap() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-two", FLINK[:2], size=20),
                     cache_model("imc-three", FLINK, size=200))
    assert (d.mode, d.result, d.cache_id) == ("auto", "hit", "imc-three")
    assert d.runner_up == "imc-two"
    assert "runner-up imc-two" in event(d, "ImageCacheChosen")


async def test_auto_then_prefers_smaller() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-big", FLINK, size=40),
                     cache_model("imc-small", FLINK, size=20))
    assert d.cache_id == "imc-small" and d.size_gib == 20


async def test_auto_then_prefers_newer() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-old", FLINK, created=NOW - 7200),
                     cache_model("imc-new", FLINK, created=NOW - 60))
    assert d.cache_id == "imc-new"


async def test_auto_partial_hit() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-a", FLINK[:1]))
    assert d.result == "partial" and d.image_snapshot_id == "imc-a" and d.match == "1/3"


async def test_auto_skips_not_ready_and_expired() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-b", FLINK, status="Creating"),
                     cache_model("imc-e", FLINK, expires=NOW - 1))
    assert d.result == "miss"
    assert "no Ready cache holds any" in event(d, "NoImageCacheChosen")


async def test_auto_miss_sends_auto_match_by_default() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-x", ["nginx:1"]))
    assert d.result == "miss" and d.image_snapshot_id is None and d.auto_match_image_cache
    assert d.annotations == {CHOSEN_CACHE_ANNOTATION: "none", CHOSEN_MATCH_ANNOTATION: "0/3"}
    msg = event(d, "NoImageCacheChosen")
    assert "no Ready cache holds any of the pod's 3 images" in msg


async def test_auto_miss_without_auto_create() -> None:
    d = await decide({AUTO_KEY: "true"},
                     settings=CacheChoiceSettings(auto_create_on_miss=False))
    assert d.result == "miss" and not d.auto_match_image_cache


async def test_perfect_match_without_a_perfect_cache_is_a_miss() -> None:
    d = await decide({AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"},
                     cache_model("imc-one", FLINK[:1]))
    assert d.result == "miss" and d.image_snapshot_id is None
    assert "the best Ready cache imc-one held 1 of 3 images but perfect match was asked" in \
        event(d, "NoImageCacheChosen")


async def test_perfect_match_with_a_perfect_cache() -> None:
    d = await decide({AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"},
                     cache_model("imc-one", FLINK[:1], size=20),
                     cache_model("imc-all", FLINK, size=500))
    assert d.cache_id == "imc-all" and d.result == "hit"


async def test_match_count_request() -> None:
    models = [cache_model("imc-one", FLINK[:1]), cache_model("imc-two", FLINK[:2], size=99)]
    d = await decide({AUTO_KEY: "true", MATCH_COUNT_KEY: "2"}, *models)
    assert d.cache_id == "imc-two"
    d = await decide({AUTO_KEY: "true", MATCH_COUNT_KEY: "3"}, *models)
    assert d.result == "miss"
    assert "held 2 of 3 images but at least 3 were requested" in event(d, "NoImageCacheChosen")
    d = await decide({AUTO_KEY: "true", MATCH_COUNT_KEY: "5"}, *models)
    assert "at least 5 images were requested but the pod has only 3" in \
        event(d, "NoImageCacheChosen")


async def test_perfect_match_wins_over_count() -> None:
    d = await decide({AUTO_KEY: "true", PERFECT_MATCH_KEY: "true", MATCH_COUNT_KEY: "1"},
                     cache_model("imc-two", FLINK[:2]))
    assert d.result == "miss"


async def test_invalid_annotation_values_are_warned() -> None:
    d = await decide({AUTO_KEY: "true", MATCH_COUNT_KEY: "-2"}, cache_model("imc-a", FLINK))
    assert d.result == "hit"
    msg = event(d, "InvalidAnnotation")
    assert MATCH_COUNT_KEY in msg and '"-2"' in msg


async def test_aliases_of_one_image_count_once() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-a", ["nginx"]),
                     images=["nginx", "docker.io/library/nginx:latest",
                             "index.docker.io/library/nginx"], policy=None)
    assert d.match == "1/1" and d.result == "hit"


async def test_invalid_image_reference_is_reported_not_fatal() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-a", ["nginx:1"]),
                     images=["nginx:1", "Not A Ref"])
    assert d.result == "hit" and d.match == "1/1"
    assert "Not A Ref" in event(d, "InvalidImageReference")


# -- pull policy and metrics -------------------------------------------------------------

async def test_pull_policy_overridden_when_starting_from_a_cache() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-a", ["nginx"]), images=["nginx"],
                     policy=None)
    assert d.pull_policy_overrides == {"c0": "IfNotPresent"}
    assert "c0" in event(d, "ImagePullPolicyOverridden")


async def test_pull_policy_untouched_on_miss_and_in_warn_mode() -> None:
    d = await decide({AUTO_KEY: "true"}, images=["nginx"], policy="Always")
    assert d.pull_policy_overrides == {} and "ImagePullPolicyOverridden" not in reasons(d)
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-a", ["nginx"]), images=["nginx"],
                     policy="Always",
                     settings=CacheChoiceSettings(pull_policy_mode=PullPolicyMode.WARN))
    assert d.pull_policy_overrides == {} and "ImagePullPolicyAlways" in reasons(d)


async def test_metrics_count_lookups_and_images() -> None:
    metrics = Metrics()
    models = [cache_model("imc-a", FLINK[:2])]
    await decide({AUTO_KEY: "true"}, *models, metrics=metrics)              # partial 2/3
    await decide({EXPLICIT_KEY: "imc-a"}, *models, metrics=metrics)         # partial 2/3
    await decide({AUTO_KEY: "true"}, images=["nginx:1"], metrics=metrics)   # miss 0/1
    await decide({EXPLICIT_KEY: "imc-zz"}, metrics=metrics)                 # not_found, blocked
    await decide({}, *models, metrics=metrics)                              # not a lookup

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return metrics.registry.get_sample_value(name, labels or {}) or 0.0

    lookups = "vk_eci_image_cache_lookups_total"
    assert sample(lookups, {"mode": "auto", "result": "partial"}) == 1
    assert sample(lookups, {"mode": "explicit", "result": "partial"}) == 1
    assert sample(lookups, {"mode": "auto", "result": "miss"}) == 1
    assert sample(lookups, {"mode": "explicit", "result": "not_found"}) == 1
    assert sample("vk_eci_pod_images_requested_total") == 7
    assert sample("vk_eci_pod_images_served_from_cache_total") == 4
    assert sample("vk_eci_image_cache_match_duration_seconds_count") == 4


async def test_auto_syncs_a_never_synced_catalog_first() -> None:
    lister = FakeLister(cache_model("imc-a", FLINK))
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "hit" and lister.calls == [None]


async def test_auto_with_eci_listing_failing_is_a_miss_that_says_why() -> None:
    lister = FakeLister(cache_model("imc-a", FLINK))
    lister.error = Retryable("ServiceUnavailable", "listing is down")
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "miss" and d.auto_match_image_cache
    assert "could not list the image caches" in event(d, "NoImageCacheChosen")
    assert "listing is down" in event(d, "NoImageCacheChosen")


async def test_explicit_with_eci_failing_raises_for_a_retry() -> None:
    lister = FakeLister()
    lister.error = Retryable("ServiceUnavailable", "down")
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    with pytest.raises(Retryable, match="down"):
        await decide_for_pod(pod({EXPLICIT_KEY: "imc-a"}), catalog, now=NOW)


async def test_fail_on_create_err_makes_a_blocked_pod_permanent() -> None:
    d = await decide({EXPLICIT_KEY: "imc-a"}, cache_model("imc-a", FLINK, status="Creating"))
    with pytest.raises(Permanent) as raised:
        d.raise_if_blocked("ns/p", fail=True)
    assert not isinstance(raised.value, Retryable) and "imc-a" in str(raised.value)


class Recorded:
    """An EventRecorder (our own protocol) that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def record(self, pod: object, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))


async def test_chooser_waits_then_wakes_and_annotates() -> None:
    from vk_eci.cloud.caches.decider import PodCacheChooser

    lister = FakeLister(cache_model("imc-a", FLINK, status="Creating"))
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    recorder = Recorded()
    patched: list[dict[str, str]] = []

    async def annotate(p: object, annotations: object) -> None:
        patched.append(dict(annotations))  # type: ignore[call-overload]

    chooser = PodCacheChooser(catalog, recorder, annotate=annotate)
    woken: list[str] = []
    chooser.wake.append(woken.append)
    the_pod = pod({EXPLICIT_KEY: "imc-a"}, policy="Always")
    with pytest.raises(ImageCacheUnavailable):
        await chooser.before_create(the_pod)
    assert recorder.events[-1][:2] == ("Warning", "ImageCacheNotReady")
    lister.put(cache_model("imc-a", FLINK, status="Ready"))
    await catalog.sync()
    assert woken == ["ns/p"]
    decision = await chooser.before_create(the_pod)
    assert decision.to_context().image_snapshot_id == "imc-a"
    assert decision.to_context().pull_policy_overrides == {
        "c0": "IfNotPresent", "c1": "IfNotPresent", "c2": "IfNotPresent"}
    assert ("Normal", "ImageCacheChosen") in [e[:2] for e in recorder.events]
    await chooser.after_create(the_pod, decision)
    assert patched == [{CHOSEN_CACHE_ANNOTATION: "imc-a", CHOSEN_MATCH_ANNOTATION: "3/3",
                        CHOSEN_BY_ANNOTATION: "node"}]


async def test_chooser_fails_fast_with_fail_on_create_err() -> None:
    from vk_eci.cloud.caches.annotations import FAIL_ON_CREATE_ERR_KEY
    from vk_eci.cloud.caches.decider import PodCacheChooser

    catalog = CacheCatalog(FakeLister(), clock=lambda: NOW)
    chooser = PodCacheChooser(catalog, Recorded())
    with pytest.raises(Permanent, match="imc-gone"):
        await chooser.before_create(pod({EXPLICIT_KEY: "imc-gone",
                                         FAIL_ON_CREATE_ERR_KEY: "true"}))


# -- freshness of automatic match ----------------------------------------------------------

class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def fresh_catalog(lister: FakeLister, ticker: Ticker) -> CacheCatalog:
    catalog = CacheCatalog(lister, min_relist_age=5.0, clock=lambda: NOW, monotonic=ticker)
    await catalog.sync()
    return catalog


async def test_auto_miss_relists_and_finds_a_cache_ready_since_the_last_listing() -> None:
    ticker = Ticker()
    lister = FakeLister()
    catalog = await fresh_catalog(lister, ticker)
    lister.put(cache_model("imc-new", FLINK))
    ticker.t += 6
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "hit" and d.image_snapshot_id == "imc-new"
    assert lister.calls == [None, None]


async def test_auto_partial_relists_and_prefers_the_now_ready_full_cache() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-part", FLINK[:1]))
    catalog = await fresh_catalog(lister, ticker)
    lister.put(cache_model("imc-full", FLINK, size=100))
    ticker.t += 6
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "hit" and d.image_snapshot_id == "imc-full" and d.runner_up == "imc-part"


async def test_auto_hit_relists_when_a_sharing_cache_was_building() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-big", FLINK, size=100),
                        cache_model("imc-small", FLINK, size=20, status="Creating"))
    catalog = await fresh_catalog(lister, ticker)
    lister.put(cache_model("imc-small", FLINK, size=20))
    ticker.t += 6
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.image_snapshot_id == "imc-small" and lister.calls == [None, None]


async def test_auto_hit_with_nothing_building_does_not_relist() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-a", FLINK))
    catalog = await fresh_catalog(lister, ticker)
    ticker.t += 600
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "hit" and lister.calls == [None]


async def test_auto_miss_within_the_minimum_age_does_not_relist() -> None:
    ticker = Ticker()
    lister = FakeLister()
    catalog = await fresh_catalog(lister, ticker)
    lister.put(cache_model("imc-new", FLINK))
    ticker.t += 4.9
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "miss" and lister.calls == [None]


async def test_a_burst_of_missing_pods_costs_one_listing() -> None:
    ticker = Ticker()
    lister = FakeLister(delay=0.01)
    catalog = await fresh_catalog(lister, ticker)
    ticker.t += 6
    pods = [pod({AUTO_KEY: "true"}, [f"app{i}:1"]) for i in range(200)]
    decisions = await asyncio.gather(*(decide_for_pod(p, catalog, now=NOW) for p in pods))
    assert {d.result for d in decisions} == {"miss"}
    assert lister.calls == [None, None]


async def test_a_pod_arriving_while_another_pods_listing_is_in_flight_decides_on_it() -> None:
    """Two automatic pods at once after a cache became Ready (the whole-file failure of
    test_metrics_count_what_happened): the second must wait for the first's listing, not
    decide on the view that listing replaces (it went without the Ready cache)."""
    ticker = Ticker()
    lister = FakeLister(delay=0.01)
    catalog = await fresh_catalog(lister, ticker)
    lister.put(cache_model("imc-new", FLINK))
    ticker.t += 6
    miss, hit = await asyncio.gather(decide_for_pod(pod({AUTO_KEY: "true"}, ["mysql:8"]),
                                                    catalog, now=NOW),
                                     decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW))
    assert miss.result == "miss"
    assert hit.result == "hit" and hit.image_snapshot_id == "imc-new"
    assert lister.calls == [None, None]  # still one listing for both


async def test_auto_relist_failing_keeps_the_last_view() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-part", FLINK[:1]))
    catalog = await fresh_catalog(lister, ticker)
    lister.error = Retryable("ServiceUnavailable", "down")
    ticker.t += 6
    d = await decide_for_pod(pod({AUTO_KEY: "true"}), catalog, now=NOW)
    assert d.result == "partial" and d.image_snapshot_id == "imc-part"


# -- lookups counted per pod -----------------------------------------------------------------

async def test_chooser_counts_a_waiting_pod_once_per_outcome() -> None:
    from vk_eci.cloud.caches.decider import PodCacheChooser

    metrics = Metrics()
    lister = FakeLister(cache_model("imc-a", FLINK, status="Creating"))
    catalog = CacheCatalog(lister, clock=lambda: NOW)
    chooser = PodCacheChooser(catalog, Recorded(), metrics=metrics)
    waiting = pod({EXPLICIT_KEY: "imc-a"})
    waiting.metadata.uid = "uid-1"
    other = pod({EXPLICIT_KEY: "imc-a"})
    other.metadata.uid = "uid-2"
    for _ in range(3):
        with pytest.raises(ImageCacheUnavailable):
            await chooser.before_create(waiting)
    with pytest.raises(ImageCacheUnavailable):
        await chooser.before_create(other)
    lister.put(cache_model("imc-a", FLINK))
    await chooser.before_create(waiting)
    await chooser.before_create(waiting)  # e.g. the create failed and is retried

    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return metrics.registry.get_sample_value(name, labels or {}) or 0.0

    lookups = "vk_eci_image_cache_lookups_total"
    assert sample(lookups, {"mode": "explicit", "result": "not_ready"}) == 2  # two pods
    assert sample(lookups, {"mode": "explicit", "result": "hit"}) == 1
    assert sample("vk_eci_image_cache_match_duration_seconds_count") == 3
    assert sample("vk_eci_pod_images_requested_total") == 3
    assert sample("vk_eci_pod_images_served_from_cache_total") == 3


@pytest.mark.parametrize("constraint", [{PERFECT_MATCH_KEY: "true"}, {MATCH_COUNT_KEY: "2"}])
async def test_a_constrained_miss_is_never_widened_to_server_side_match(
        constraint: dict[str, str]) -> None:
    # A 1-image cache and a 3-image pod: ECI's server-side match would take it, so it is never sent.
    d = await decide({AUTO_KEY: "true", **constraint}, cache_model("imc-one", FLINK[:1]))
    assert d.result == "miss" and d.image_snapshot_id is None
    assert not d.auto_match_image_cache and not d.to_context().auto_match_image_cache
    assert d.build_cache
    assert "the node builds one of its images for the next pod" in event(d, "NoImageCacheChosen")
    off = await decide({AUTO_KEY: "true", **constraint}, cache_model("imc-one", FLINK[:1]),
                       settings=CacheChoiceSettings(auto_create_on_miss=False))
    assert not off.auto_match_image_cache and not off.build_cache
    assert "starts without a cache and pulls its images" in event(off, "NoImageCacheChosen")


async def test_an_unconstrained_miss_keeps_server_side_match_and_builds_nothing() -> None:
    d = await decide({AUTO_KEY: "true"}, cache_model("imc-x", ["nginx:1"]))
    assert d.auto_match_image_cache and not d.build_cache
