"""What the advisor observes of pods: ECI's pull events, owners, and ECI's word on the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1OwnerReference, V1Pod

from vk_eci.advisor.observe import PodObserver, Pull, go_duration, pulls_of, workload_of
from vk_eci.advisor.record import DemandRecord
from vk_eci.cloud.caches.annotations import AUTO_KEY, EXPLICIT_KEY
from vk_eci.cloud.groups.status import GroupEvent
from vk_eci.metrics import Metrics

NGINX = "docker.io/library/nginx:1.25"
FLINK = "registry.cn-hangzhou.aliyuncs.com/eci_open/flink:1.13"
T = datetime(2026, 11, 29, tzinfo=UTC)


def event(reason: str, message: str, at: datetime | None = None) -> GroupEvent:
    return GroupEvent(name="g.1", type="Normal", reason=reason, message=message, count=1,
                      first=at, last=at)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1.5s", 1.5), ("850ms", 0.85), ("2m3.25s", 123.25), ("1h0m1s", 3601.0), ("120µs", 0.00012),
    ("", None), ("1.5", None), ("s", None), ("1.5sx", None), ("abc", None),
])
def test_go_durations(text: str, seconds: float | None) -> None:
    got = go_duration(text)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_pulls_from_the_kubelet_message_the_emulator_and_the_timestamps() -> None:
    events = [
        # Today's kubelet (and ECI's agent): duration, waiting, and the image size.
        event("Pulled", 'Successfully pulled image "nginx:1.25" in 2.5s (3.1s including '
              "waiting). Image size: 1073741824 bytes."),
        # The emulator.
        event("Pulled", f'Successfully pulled image "{FLINK}" in 50.000s'),
        # An older kubelet: no duration, timed from its Pulling event.
        event("Pulling", 'Pulling image "redis:7"', T),
        event("Pulled", 'Successfully pulled image "redis:7"', T + timedelta(seconds=7)),
        # Not pulls.
        event("Pulled", 'Container image "busybox:1.36" already present on machine'),
        event("Pulled", 'Successfully pulled image "Not A Reference!" in 1s'),
        event("Pulled", 'Successfully pulled image "alpine:3" without timing'),
    ]
    assert pulls_of(events) == [
        Pull(NGINX, 2.5, 1 << 30),
        Pull(FLINK, 50.0),
        Pull("docker.io/library/redis:7", 7.0),
    ]


def pod(name: str = "p", annotations: dict[str, str] | None = None,
        owner: tuple[str, str] | None = None, labels: dict[str, str] | None = None) -> V1Pod:
    refs = ([V1OwnerReference(api_version="apps/v1", kind=owner[0], name=owner[1], uid="u",
                              controller=True)] if owner else None)
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="ns", uid=f"uid-{name}",
                                       annotations=annotations, labels=labels,
                                       owner_references=refs))


def test_workload_names_the_controller_and_the_deployment_behind_a_replicaset() -> None:
    assert workload_of(pod(owner=("ReplicaSet", "web-7d9f8b6c5"),
                           labels={"pod-template-hash": "7d9f8b6c5"})) == "ns/Deployment/web"
    assert workload_of(pod(owner=("ReplicaSet", "web-abc"))) == "ns/ReplicaSet/web-abc"
    assert workload_of(pod(owner=("Job", "nightly"))) == "ns/Job/nightly"
    assert workload_of(pod()) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_pulls_are_counted_once_per_pod_and_image() -> None:
    rec = DemandRecord()
    obs = PodObserver(rec, clock=Clock())
    events = [event("Pulled", 'Successfully pulled image "nginx:1.25" in 4s')]
    for _ in range(3):  # every listing repeats the group's events
        await obs.group_events(pod("a"), events)
    await obs.group_events(pod("b"), [event("Pulled",
                                            'Successfully pulled image "nginx:1.25" in 8s')])
    assert rec.images[NGINX].pulls == 2
    assert rec.mean_pull_seconds(NGINX) == pytest.approx(6)


def test_only_automatic_pods_are_demand() -> None:
    rec = DemandRecord()
    obs = PodObserver(rec, clock=Clock())
    auto = pod("a", {AUTO_KEY: "true"}, owner=("Job", "ci"))
    obs.reported(auto, [NGINX, FLINK], None, "miss")
    obs.reported(pod("e", {EXPLICIT_KEY: "imc-abc", AUTO_KEY: "true"}), [NGINX], "imc-abc",
                 "hit")
    obs.reported(pod("n"), [NGINX], None, "miss")
    assert list(rec.sets) == [tuple(sorted([NGINX, FLINK]))]
    assert rec.sets[tuple(sorted([NGINX, FLINK]))].workloads == ["ns/Job/ci"]


def test_hits_on_advisor_caches_are_realised_savings() -> None:
    rec = DemandRecord()
    rec.add_pull(NGINX, 10, 0)
    rec.add_pull(FLINK, 50, 0)
    metrics = Metrics()
    owned = {"imc-advisor": (FLINK,)}
    obs = PodObserver(rec, metrics=metrics, clock=Clock(), owned=owned.get)
    auto = pod("a", {AUTO_KEY: "true"})
    obs.reported(auto, [NGINX, FLINK], "imc-advisor", "partial")  # served FLINK only
    obs.reported(auto, [NGINX, FLINK], "imc-user", "hit")  # not the advisor's
    obs.reported(auto, [NGINX, FLINK], None, "miss")
    value = metrics.registry.get_sample_value
    assert value("vk_eci_imagecache_advisor_realised_savings_seconds_total") == 50
    assert value("vk_eci_imagecache_advisor_hits_total") == 1
    assert rec.sets[tuple(sorted([NGINX, FLINK]))].hits == 1  # only the full hit ("hit")


