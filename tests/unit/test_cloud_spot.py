"""cloud.groups.spot through the status mapping: a reclaimed spot group is a pod its controller
can act on (Failed, SpotPreempted, DisruptionTarget); an on-demand Expired group is not a spot
preemption."""

from __future__ import annotations

from typing import Any

from alibabacloud_eci20180808.models import DescribeContainerGroupsResponseBodyContainerGroups
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.groups import spot
from vk_eci.cloud.groups.status import group_to_pod_status, status_changed

KILLED = {"Name": "app", "Ready": False, "RestartCount": 0, "CurrentState": {
    "State": "Terminated", "ExitCode": 137, "Reason": "Expired",
    "StartTime": "2024-05-01T11:59:30Z", "FinishTime": "2024-05-01T12:10:00Z"}}
WARNING = {"Name": "eci-1", "Type": "Warning", "Reason": "SpotToBeReleased", "Count": 1,
           "Message": "Spot ECI will be released in 3 minutes",
           "FirstTimestamp": "2024-05-01T12:07:00Z", "LastTimestamp": "2024-05-01T12:07:00Z"}


def group(status: str, strategy: str, events: list[dict[str, Any]] | None = None) -> Any:
    return DescribeContainerGroupsResponseBodyContainerGroups().from_map({
        "ContainerGroupId": "eci-1", "ContainerGroupName": "ns-p", "Status": status,
        "CreationTime": "2024-05-01T11:59:00Z", "ExpiredTime": "2024-05-01T12:10:00Z",
        "SpotStrategy": strategy, "Containers": [KILLED], "Events": events or []})


POD = V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", uid="u"),
            spec=V1PodSpec(containers=[V1Container(name="app", image="nginx:1")]))


def test_reclaimed_spot_group_is_a_disrupted_failed_pod() -> None:
    st = group_to_pod_status(group("Expired", "SpotAsPriceGo", [WARNING]), POD)
    assert (st.phase, st.reason) == ("Failed", "SpotPreempted")
    assert "eci-1" in st.message and "SpotAsPriceGo" in st.message
    [disruption] = [c for c in st.conditions if c.type == "DisruptionTarget"]
    assert (disruption.status, disruption.reason) == ("True", "TerminationByKubelet")
    assert disruption.last_transition_time.isoformat().startswith("2024-05-01T12:10:00")
    assert st.container_statuses[0].state.terminated.exit_code == 137
    # The same group mapped again is no change to write.
    again = group_to_pod_status(group("Expired", "SpotAsPriceGo", [WARNING]), POD)
    assert not status_changed(st, again)


def test_on_demand_expired_group_is_no_preemption() -> None:
    st = group_to_pod_status(group("Expired", "NoSpot"), POD)
    assert (st.phase, st.reason) == ("Failed", "Expired")
    assert not [c for c in st.conditions if c.type == "DisruptionTarget"]


def test_warning_is_seen_only_on_spot_groups_that_have_it() -> None:
    assert spot.warned(group("Running", "SpotAsPriceGo", [WARNING]))
    assert not spot.warned(group("Running", "SpotAsPriceGo"))
    assert spot.is_spot(group("Running", "SpotWithPriceLimit"))
    assert not spot.is_spot(group("Running", "NoSpot"))


def test_failed_after_the_warning_is_a_preemption_too() -> None:
    st = group_to_pod_status(group("Failed", "SpotAsPriceGo", [WARNING]), POD)
    assert (st.phase, st.reason) == ("Failed", "SpotPreempted")
    assert [c for c in st.conditions if c.type == "DisruptionTarget"]
    # Failed without a warning is the program's own failure, not a preemption.
    own = group_to_pod_status(group("Failed", "SpotAsPriceGo"), POD)
    assert own.reason != "SpotPreempted"
    assert not [c for c in own.conditions if c.type == "DisruptionTarget"]
