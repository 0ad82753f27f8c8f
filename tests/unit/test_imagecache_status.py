"""ECI image cache (the SDK's DescribeImageCaches model) → ImageCache status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import pytest
from alibabacloud_eci20180808 import models as eci

from vk_eci.cluster.imagecaches import status as st

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
Ev: TypeAlias = eci.DescribeImageCachesResponseBodyImageCachesEvents


def cache(status: str, progress: str = "", events: list[Ev] | None = None,
          expire: str | None = None) -> eci.DescribeImageCachesResponseBodyImageCaches:
    return eci.DescribeImageCachesResponseBodyImageCaches(
        image_cache_id="imc-2zeditzeoemfhqor4rf8", image_cache_name="imagecache-sample",
        status=status, progress=progress, images=["centos:latest", "busybox:latest"],
        snapshot_id="s-1", image_cache_size=25, creation_time="2024-05-01T11:50:00Z",
        expire_date_time=expire, events=events or [])


@pytest.mark.parametrize(("text", "expected"), [
    ("2019-10-10T09:14Z", datetime(2019, 10, 10, 9, 14, tzinfo=UTC)),
    ("2019-10-10T09:14:05Z", datetime(2019, 10, 10, 9, 14, 5, tzinfo=UTC)),
    ("2019-10-10T09:14:05.250Z", datetime(2019, 10, 10, 9, 14, 5, 250000, tzinfo=UTC)),
    ("2019-10-10T17:14:05+08:00", datetime(2019, 10, 10, 9, 14, 5, tzinfo=UTC)),
    ("yesterday", None), ("", None), (None, None),
])
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert st.parse_time(text) == expected


def test_ready_cache_status_has_every_field_like_the_documentation() -> None:
    events = [Ev(count=1, first_timestamp="2024-05-01T11:51:00Z",
                 last_timestamp="2024-05-01T11:51:00Z", message="Success pull image busybox:latest",
                 name="busybox:latest", reason="Pulled", type="Normal")]
    status = st.status_from_cache(cache("Ready", "100%", events, "2024-05-08T11:50:00Z"), {}, NOW)
    assert status["phase"] == "Ready" and status["progress"] == "100%"
    assert status["imageCacheId"] == "imc-2zeditzeoemfhqor4rf8"
    assert status["startTime"] == "2024-05-01T11:50:00Z"
    assert status["expireDateTime"] == "2024-05-08T11:50:00Z"
    assert status["lastUpdatedTime"] == "2024-05-01T12:00:00Z"
    assert status["images"] == ["centos:latest", "busybox:latest"]
    (event,) = status["events"]
    assert event == {
        "count": 1, "firstTimestamp": "2024-05-01T11:51:00Z",
        "lastTimestamp": "2024-05-01T11:51:00Z", "message": "Success pull image busybox:latest",
        "reason": "Pulled", "type": "Normal", "metadata": {"name": "busybox:latest"},
        "involvedObject": {"name": "imc-2zeditzeoemfhqor4rf8"},
        "source": {"component": "kubelet", "host": "eci"}}
    assert status["reason"] is None and status["message"] is None


def test_last_updated_time_moves_only_when_something_changed() -> None:
    first = st.status_from_cache(cache("Creating", "40%"), {}, NOW)
    later = NOW + timedelta(seconds=30)
    same = st.status_from_cache(cache("Creating", "40%"), first, later)
    assert same == first and not st.changed(first, same)
    moved = st.status_from_cache(cache("Creating", "70%"), first, later)
    assert moved["lastUpdatedTime"] == "2024-05-01T12:00:30Z" and st.changed(first, moved)


def test_failed_build_has_reason_and_expiry_24h_after_failure() -> None:
    events = [Ev(count=1, first_timestamp="2024-05-01T11:55:00Z",
                 last_timestamp="2024-05-01T11:55:00Z", type="Warning", reason="Failed",
                 message="Failed to pull image reg.example.com/app:1: 401 Unauthorized")]
    status = st.status_from_cache(cache("Failed", "0%", events), {}, NOW)
    assert status["phase"] == "Failed" and status["reason"] == "Failed"
    assert "401 Unauthorized" in status["message"]
    assert status["expireDateTime"] == "2024-05-02T11:55:00Z"


def test_failed_build_uses_ecis_expiry_when_given() -> None:
    status = st.status_from_cache(cache("Failed", "0%", [], "2024-05-02T11:00:00Z"), {}, NOW)
    assert status["expireDateTime"] == "2024-05-02T11:00:00Z"
    assert status["reason"] == "BuildFailed"


def test_gone_cache_is_expired_after_its_retention_else_deleted() -> None:
    previous = {"phase": "Ready", "imageCacheId": "imc-1", "progress": "100%",
                "expireDateTime": "2024-05-01T11:59:00Z"}
    assert st.gone_status(previous, NOW)["phase"] == "Expired"
    previous["expireDateTime"] = "2024-06-01T00:00:00Z"
    gone = st.gone_status(previous, NOW)
    assert gone["phase"] == "Deleted" and "imc-1 no longer exists" in gone["message"]
    assert st.gone_status({"imageCacheId": "imc-2"}, NOW)["phase"] == "Deleted"


def test_merge_patch_sets_and_clears() -> None:
    assert st.merge_patch({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5}) == {"b": 5, "c": None}


def test_spec_applied_condition_outlives_a_poll_and_keeps_its_transition_time() -> None:
    refused = st.spec_applied_condition(4, ["spec.imageCacheSize: cannot shrink"], NOW)
    assert (refused["status"], refused["reason"]) == ("False", "RecreateRequired")
    assert refused["message"] == "spec.imageCacheSize: cannot shrink"
    conditions = st.with_condition(None, refused)
    mirrored = st.status_from_cache(cache(st.READY, "100%"), {"conditions": conditions}, NOW)
    assert mirrored["conditions"] == conditions
    later = NOW + timedelta(minutes=5)
    again = st.with_condition(conditions, st.spec_applied_condition(5, ["x"], later))
    assert len(again) == 1 and again[0]["lastTransitionTime"] == st.format_time(NOW)
    assert again[0]["observedGeneration"] == 5
    applied = st.with_condition(again, st.spec_applied_condition(6, [], later))
    assert [(c["status"], c["reason"]) for c in applied] == [("True", "Applied")]
    assert applied[0]["lastTransitionTime"] == st.format_time(later)
