"""cloud.groups.status: ECI group → pod status, table-driven over SDK models built from maps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alibabacloud_eci20180808.models import DescribeContainerGroupsResponseBodyContainerGroups
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.groups.status import group_events, group_to_pod_status, phase_of, status_changed

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def state(kind: str, **kw: Any) -> dict[str, Any]:
    return {"State": kind, **kw}


def group(status: str, containers: list[dict[str, Any]] | None = None,
          inits: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    data = {"ContainerGroupId": "eci-1", "ContainerGroupName": "ns-p", "Status": status,
            "IntranetIp": "192.168.0.7", "CreationTime": "2024-05-01T11:59:00Z",
            "Containers": containers if containers is not None else [],
            "InitContainers": inits or [], **kw}
    return DescribeContainerGroupsResponseBodyContainerGroups().from_map(data)


def pod(inits: bool = False) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", uid="u"), spec=V1PodSpec(
        containers=[V1Container(name="app", image="nginx:1")],
        init_containers=[V1Container(name="init", image="busybox:1")] if inits else None))


RUNNING = {"Name": "app", "Ready": True, "RestartCount": 0,
           "CurrentState": state("Running", StartTime="2024-05-01T11:59:30Z")}


@pytest.mark.parametrize(("eci", "phase"), [
    ("Scheduling", "Pending"), ("Pending", "Pending"), ("Restarting", "Pending"),
    ("Updating", "Pending"), ("Running", "Running"), ("Terminating", "Running"),
    ("Succeeded", "Succeeded"), ("Failed", "Failed"), ("Expired", "Failed"),
    ("ScheduleFailed", "Failed"), ("SomethingNew", "Pending"),
])
def test_phase_table(eci: str, phase: str) -> None:
    assert phase_of(eci) == phase
    assert group_to_pod_status(group(eci), pod(), NOW).phase == phase


def conds(status: Any) -> dict[str, str]:
    return {c.type: c.status for c in status.conditions}


CASES: list[tuple[str, Any, bool, dict[str, Any]]] = [
    ("running and ready", group("Running", [RUNNING]), False, {
        "conditions": {"PodScheduled": "True", "Initialized": "True",
                       "ContainersReady": "True", "Ready": "True"},
        "ip": "192.168.0.7", "state": "running", "ready": True}),
    ("scheduling", group("Scheduling", []), False, {
        "conditions": {"PodScheduled": "False", "Initialized": "True",
                       "ContainersReady": "False", "Ready": "False"},
        "state": "waiting", "waiting_reason": "ContainerCreating"}),
    ("pulling", group("Pending", [{"Name": "app", "Ready": False, "CurrentState": state(
        "Waiting", Reason="ErrImagePull", Message="not found")}]), False, {
        "conditions": {"PodScheduled": "True", "Ready": "False"},
        "state": "waiting", "waiting_reason": "ErrImagePull"}),
    ("init running", group("Pending", [{"Name": "app", "CurrentState": state(
        "Waiting", Reason="PodInitializing")}], [{"Name": "init", "CurrentState": state(
            "Running", StartTime="2024-05-01T11:59:10Z")}]), True, {
        "conditions": {"Initialized": "False", "Ready": "False"},
        "state": "waiting", "waiting_reason": "PodInitializing", "init_state": "running"}),
    ("init done", group("Running", [RUNNING], [{"Name": "init", "CurrentState": state(
        "Terminated", ExitCode=0, Reason="Completed", StartTime="2024-05-01T11:59:10Z",
        FinishTime="2024-05-01T11:59:20Z")}]), True, {
        "conditions": {"Initialized": "True", "Ready": "True"}, "init_state": "terminated"}),
    ("job failed with exit 3", group("Failed", [{"Name": "app", "Ready": False, "CurrentState":
        state("Terminated", ExitCode=3, Reason="Error", StartTime="2024-05-01T11:59:30Z",
              FinishTime="2024-05-01T11:59:40Z")}]), False, {
        "phase": "Failed", "state": "terminated", "exit_code": 3, "term_reason": "Error",
        "conditions": {"Ready": "False"}, "reason": None}),
    ("job succeeded", group("Succeeded", [{"Name": "app", "CurrentState": state(
        "Terminated", ExitCode=0, Reason="Completed")}]), False, {
        "phase": "Succeeded", "state": "terminated", "exit_code": 0}),
    ("restarted", group("Running", [{**RUNNING, "RestartCount": 2, "PreviousState": state(
        "Terminated", ExitCode=1, Reason="Error", FinishTime="2024-05-01T11:59:29Z")}]), False, {
        "restarts": 2, "last_exit": 1, "state": "running"}),
    ("expired", group("Expired", []), False, {"phase": "Failed", "reason": "Expired"}),
    ("schedule failed", group("ScheduleFailed", []), False, {
        "phase": "Failed", "reason": "ProviderFailed",
        "conditions": {"PodScheduled": "False"}}),
    ("terminating is not ready", group("Terminating", [RUNNING]), False, {
        "phase": "Running", "conditions": {"Ready": "False", "ContainersReady": "True"}}),
]


@pytest.mark.parametrize(("case", "g", "inits", "want"), CASES, ids=[c[0] for c in CASES])
def test_status(case: str, g: Any, inits: bool, want: dict[str, Any]) -> None:
    st = group_to_pod_status(g, pod(inits), NOW)
    c = conds(st)
    for key, value in want.get("conditions", {}).items():
        assert c[key] == value, key
    app = st.container_statuses[0]
    if "phase" in want:
        assert st.phase == want["phase"]
    if "ip" in want:
        assert st.pod_ip == want["ip"] and st.pod_ips[0].ip == want["ip"]
    if "state" in want:
        assert getattr(app.state, want["state"]) is not None
    if "ready" in want:
        assert app.ready is want["ready"]
    if "waiting_reason" in want:
        assert app.state.waiting.reason == want["waiting_reason"]
    if "exit_code" in want:
        assert app.state.terminated.exit_code == want["exit_code"]
    if "term_reason" in want:
        assert app.state.terminated.reason == want["term_reason"]
    if "restarts" in want:
        assert app.restart_count == want["restarts"]
        assert app.last_state.terminated.exit_code == want["last_exit"]
    if "init_state" in want:
        assert getattr(st.init_container_statuses[0].state, want["init_state"]) is not None
    if "reason" in want:
        assert st.reason == want["reason"]


def test_times_are_parsed() -> None:
    st = group_to_pod_status(group("Running", [RUNNING]), pod(), NOW)
    assert st.start_time == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert st.container_statuses[0].state.running.started_at == datetime(
        2024, 5, 1, 11, 59, 30, tzinfo=UTC)


def test_unchanged_group_gives_unchanged_status_and_keeps_transition_times() -> None:
    g = group("Running", [RUNNING])
    first = group_to_pod_status(g, pod(), NOW)
    later = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    # Without the pod's previous status, times come from ECI's, so two mappings agree.
    assert group_to_pod_status(g, pod(), later).to_dict() == first.to_dict()
    times = {c.type: c.last_transition_time for c in first.conditions}
    assert times["PodScheduled"] == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert times["Ready"] == datetime(2024, 5, 1, 11, 59, 30, tzinfo=UTC)
    p = pod()
    p.status = first
    second = group_to_pod_status(g, p, later)
    assert not status_changed(first, second)
    third = group_to_pod_status(group("Succeeded", [{"Name": "app", "CurrentState": state(
        "Terminated", ExitCode=0, FinishTime="2024-05-01T12:01:00Z")}]), p, later)
    assert status_changed(second, third)
    ready = next(c for c in third.conditions if c.type == "Ready")
    assert ready.status == "False"
    assert ready.last_transition_time == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    assert status_changed(None, first)


def test_group_events() -> None:
    g = group("Running", [RUNNING], Events=[
        {"Name": "e2", "Type": "Normal", "Reason": "Started", "Message": "started app",
         "Count": 1, "FirstTimestamp": "2024-05-01T11:59:31Z",
         "LastTimestamp": "2024-05-01T11:59:31Z"},
        {"Name": "e1", "Type": "Normal", "Reason": "SuccessfulHitImageCache",
         "Message": "[eci.imagecache]Successfully hit image cache imc-1", "Count": 1,
         "FirstTimestamp": "2024-05-01T11:59:05Z", "LastTimestamp": "2024-05-01T11:59:05Z"},
        {"Name": "e3", "Type": "Weird", "Reason": "BackOff", "Message": "m", "Count": 3}])
    events = group_events(g)
    assert [e.reason for e in events] == ["BackOff", "SuccessfulHitImageCache", "Started"]
    assert events[0].type == "Normal" and events[0].count == 3
    assert events[1].key == ("e1", "SuccessfulHitImageCache", 1)
    assert group_events(group("Running")) == []


def test_allocation_annotations_name_instance_spec_zone_and_addresses() -> None:
    from alibabacloud_eci20180808.models import DescribeContainerGroupsResponseBodyContainerGroups

    from vk_eci.cloud.groups import allocated as a

    group = DescribeContainerGroupsResponseBodyContainerGroups(
        container_group_id="eci-1", cpu=2.0, memory=4.0, instance_type="", zone_id="cn-hangzhou-h",
        internet_ip="203.0.113.5", ipv_6address="2001:db8::5", eni_instance_id="eni-1")
    values = a.allocated(group)
    assert values == {a.INSTANCE_ID: "eci-1", a.INSTANCE_SPEC: "2.0-4.0Gi",
                      a.INSTANCE_ZONE: "cn-hangzhou-h", a.EIP_ADDRESS: "203.0.113.5",
                      a.IPV6_ADDRESS: "2001:db8::5", a.ENI_ID: "eni-1"}
    group.instance_type, group.internet_ip = "ecs.c6.large", ""
    assert a.allocated(group)[a.INSTANCE_SPEC] == "ecs.c6.large"
    assert a.EIP_ADDRESS not in a.allocated(group)
    # Only allocation keys that differ are written; the user's own annotations never are.
    assert a.missing({a.INSTANCE_ID: "eci-1", "other": "x"},
                     {a.INSTANCE_ID: "eci-1", a.ENI_ID: "eni-1", "other": "y"}) == {
        a.ENI_ID: "eni-1"}


def test_image_is_the_one_eci_runs() -> None:
    # kubectl set image changed the spec; until ECI runs the new image the status says the old.
    running_old = group("Running", [{**RUNNING, "Image": "nginx:0"}])
    assert group_to_pod_status(running_old, pod(), NOW).container_statuses[0].image == "nginx:0"
    # ECI not listing the container (yet): the spec's image.
    assert group_to_pod_status(group("Pending", []), pod(), NOW).container_statuses[0].image == \
        "nginx:1"


def test_the_fingerprint_of_a_status_changes_exactly_when_status_changed_says_so() -> None:
    from vk_eci.cloud.groups.status import status_fingerprint

    g = group("Running", [RUNNING])
    first = group_to_pod_status(g, pod(), NOW)
    p = pod()
    p.status = first
    # Later mapping: transition times differ in value only where status_changed ignores them.
    second = group_to_pod_status(g, p, datetime(2024, 5, 1, 12, 5, tzinfo=UTC))
    second.qos_class = "BestEffort"  # set by the API server, not ours to compare
    third = group_to_pod_status(group("Succeeded", [{"Name": "app", "CurrentState": state(
        "Terminated", ExitCode=0, FinishTime="2024-05-01T12:01:00Z")}]), p, NOW)
    assert not status_changed(first, second)
    assert status_fingerprint(first) == status_fingerprint(second)
    assert status_changed(second, third)
    assert status_fingerprint(second) != status_fingerprint(third)
    assert len(status_fingerprint(first)) == 16
