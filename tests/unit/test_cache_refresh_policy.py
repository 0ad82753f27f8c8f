"""Pods started from a cache older than the refresh period keep pulling Always for their
mutable tags (docs/IMAGE_CACHES.md, "Refresh and purge")."""

from __future__ import annotations

from tests.unit.cache_fakes import NOW, FakeLister, cache_model
from tests.unit.test_cloud_cache_choice import decide, pod, reasons
from vk_eci.cloud.caches.annotations import AUTO_KEY, EXPLICIT_KEY
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.cloud.caches.decision import CacheChoiceSettings, CacheDecision
from vk_eci.cloud.caches.pull_policy import (
    ContainerImage,
    PullPolicyMode,
    kept_for_age,
    mutable,
    stale_cache,
)

DAY = 86400.0
TAGGED = ["docker.io/library/flink:latest", "docker.io/library/redis:7"]
PINNED = "docker.io/library/busybox@sha256:" + "a" * 64


def test_stale_cache_and_mutable() -> None:
    assert stale_cache(NOW - DAY - 1, NOW, DAY)
    assert not stale_cache(NOW - DAY + 1, NOW, DAY)
    assert not stale_cache(NOW - 10 * DAY, NOW, 0)  # 0: never
    assert not stale_cache(0.0, NOW, DAY)  # unknown creation time: as before
    assert mutable("redis:7") and mutable("flink") and not mutable(PINNED)
    assert kept_for_age([ContainerImage("p", PINNED, "Always")], "imc-a", 2 * DAY, DAY) is None


async def test_young_cache_rewrites_always_old_cache_keeps_it_for_tags_only() -> None:
    images = [*TAGGED, PINNED]
    young = await decide({AUTO_KEY: "true"}, cache_model("imc-a", images, created=NOW - 3600),
                         images=images, policy="Always")
    assert young.image_snapshot_id == "imc-a"
    assert set(young.pull_policy_overrides) == {"c0", "c1", "c2"}
    assert "ImagePullPolicyKept" not in reasons(young)

    old = await decide({AUTO_KEY: "true"}, cache_model("imc-a", images, created=NOW - 2 * DAY),
                       images=images, policy="Always")
    assert old.image_snapshot_id == "imc-a"  # still used: its layers still save pulling
    assert old.pull_policy_overrides == {"c2": "IfNotPresent"}  # the digest only
    kept = [e.message for e in old.events if e.reason == "ImagePullPolicyKept"]
    assert len(kept) == 1 and "c0" in kept[0] and "c1" in kept[0] and "c2" not in kept[0]


async def test_period_is_the_nodes_setting_and_zero_turns_it_off() -> None:
    model = cache_model("imc-a", TAGGED, created=NOW - 2 * DAY)
    week = await decide({EXPLICIT_KEY: "imc-a"}, model, images=TAGGED, policy="Always",
                        settings=CacheChoiceSettings(refresh_period=7 * DAY))
    assert set(week.pull_policy_overrides) == {"c0", "c1"}
    off = await decide({EXPLICIT_KEY: "imc-a"}, model, images=TAGGED, policy="Always",
                       settings=CacheChoiceSettings(refresh_period=0))
    assert set(off.pull_policy_overrides) == {"c0", "c1"}
    hour = await decide({EXPLICIT_KEY: "imc-a"}, model, images=TAGGED, policy="Always",
                        settings=CacheChoiceSettings(refresh_period=3600))
    assert hour.pull_policy_overrides == {} and "ImagePullPolicyKept" in reasons(hour)
    quiet = await decide({EXPLICIT_KEY: "imc-a"}, model, images=TAGGED, policy="Always",
                         settings=CacheChoiceSettings(pull_policy_mode=PullPolicyMode.OFF))
    assert quiet.pull_policy_overrides == {} and "ImagePullPolicyKept" not in reasons(quiet)


async def _decide_with_object(created: float, period: float | None, refreshed: float | None,
                              node_period: float) -> CacheDecision:
    """A pod naming imc-a, whose ImageCache object (as this process's controller reports it)
    sets ``period`` and was last refreshed at ``refreshed``."""
    catalog = CacheCatalog(FakeLister(cache_model("imc-a", TAGGED, created=created)),
                           clock=lambda: NOW)
    await catalog.sync()
    catalog.observe_refresh("imc-a", period, refreshed)
    return await decide_for_pod(pod({EXPLICIT_KEY: "imc-a"}, TAGGED, "Always"), catalog,
                                settings=CacheChoiceSettings(refresh_period=node_period), now=NOW)


async def test_the_objects_own_period_and_last_refresh_win_over_the_nodes() -> None:
    # The object's 1 h beats the node's week: a cache built 2 h ago keeps Always.
    short = await _decide_with_object(NOW - 7200, 3600, None, 7 * DAY)
    assert short.pull_policy_overrides == {}
    assert "more than its refresh period (1.0 h)" in " ".join(e.message for e in short.events)
    # Refreshed 10 minutes ago: its content is young again, Always is rewritten.
    fresh = await _decide_with_object(NOW - 2 * DAY, 3600, NOW - 600, DAY)
    assert set(fresh.pull_policy_overrides) == {"c0", "c1"}
    assert "ImagePullPolicyKept" not in reasons(fresh)
    # The object's 30 days beat the node's day: a 2-day-old cache is young.
    long = await _decide_with_object(NOW - 2 * DAY, 30 * DAY, None, DAY)
    assert set(long.pull_policy_overrides) == {"c0", "c1"}
    # No period on the object: the node's, counted from the last refresh.
    node = await _decide_with_object(NOW - 3 * DAY, None, NOW - 2 * DAY, DAY)
    assert node.pull_policy_overrides == {}
    # Nothing said (the object gone, or no controller here): the node's, from creation.
    catalog = CacheCatalog(FakeLister(cache_model("imc-a", TAGGED, created=NOW - 2 * DAY)),
                           clock=lambda: NOW)
    await catalog.sync()
    catalog.observe_refresh("imc-a", 3600, NOW - 600)
    catalog.observe_refresh("imc-a", None, None)
    assert catalog.refresh_of("imc-a", DAY) == (DAY, NOW - 2 * DAY)
