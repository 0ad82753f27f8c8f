"""Pure parts of the pod controller and status sync: cache_result labels, status comparison."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1Pod

from vk_eci.cluster.pods.controller import cache_result
from vk_eci.cluster.pods.sync import comparable, keep_transition_times, transition_time


@pytest.mark.parametrize(("annotations", "want"), [
    (None, "none"),
    ({"other": "x"}, "none"),
    ({"vk-eci.io/image-cache": "none", "vk-eci.io/image-cache-match": "0/2"}, "miss"),
    ({"vk-eci.io/image-cache": "imc-abc", "vk-eci.io/image-cache-match": "2/2"}, "hit"),
    ({"vk-eci.io/image-cache": "imc-abc", "vk-eci.io/image-cache-match": "1/2"}, "partial"),
    ({"vk-eci.io/image-cache": "imc-abc", "vk-eci.io/image-cache-match": "9/10"}, "partial"),
    ({"vk-eci.io/image-cache": "imc-abc"}, "hit"),
])
def test_cache_result_from_recorded_choice(annotations: dict[str, str] | None,
                                           want: str) -> None:
    pod = V1Pod(metadata=V1ObjectMeta(name="p", namespace="n", annotations=annotations))
    assert cache_result(pod) == want


def _status(ready: str, at: str) -> dict[str, object]:
    return {"phase": "Running", "conditions": [
        {"type": "Ready", "status": ready, "lastTransitionTime": at},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": at}]}


def test_unchanged_conditions_keep_their_transition_time() -> None:
    have = _status("True", "2024-01-01T00:00:00Z")
    wanted = _status("True", "2024-01-01T00:05:00Z")
    keep_transition_times(wanted, have)
    assert comparable(wanted) == comparable(have)


def test_changed_condition_gets_the_new_time() -> None:
    have = _status("False", "2024-01-01T00:00:00Z")
    wanted = _status("True", "2024-01-01T00:05:00Z")
    keep_transition_times(wanted, have)
    assert comparable(wanted) != comparable(have)
    times = {c["type"]: c["lastTransitionTime"] for c in wanted["conditions"]}  # type: ignore
    assert times == {"Ready": "2024-01-01T00:05:00Z", "PodScheduled": "2024-01-01T00:00:00Z"}


def test_transition_time_is_ecis_own_time_of_the_phase() -> None:
    def running(at: str) -> dict[str, object]:
        return {"state": {"running": {"startedAt": at}}}

    def ended(at: str) -> dict[str, object]:
        return {"state": {"terminated": {"finishedAt": at, "exitCode": 0}}}

    # Running: when the last container started (ECI is Running once all have).
    assert transition_time({"phase": "Running", "containerStatuses": [
        running("2024-01-01T00:00:05+00:00"), running("2024-01-01T00:00:09Z")]}) == (
        1_704_067_209.0)
    assert transition_time({"phase": "Succeeded", "containerStatuses": [
        ended("2024-01-01T00:01:00Z")]}) == 1_704_067_260.0
    assert transition_time({"phase": "Pending", "conditions": [
        {"type": "Ready", "lastTransitionTime": "2024-01-01T00:00:09Z"},
        {"type": "PodScheduled", "lastTransitionTime": "2024-01-01T00:00:01Z"}]}) == (
        1_704_067_201.0)
    # No time from ECI (a group that failed before any container ran): nothing to observe.
    assert transition_time({"phase": "Failed", "containerStatuses": [
        {"state": {"waiting": {"reason": "ErrImagePull"}}}]}) is None
    assert transition_time({"phase": "Running", "containerStatuses": [
        running("not a time")]}) is None
