"""EciProvider against the ECI emulator over HTTP (no Kubernetes needed: pods are objects)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from kubernetes_asyncio.client import (
    V1Container,
    V1EnvVar,
    V1EnvVarSource,
    V1HostPathVolumeSource,
    V1LocalObjectReference,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1SecretKeySelector,
    V1Volume,
)

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.groups.view import tag
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.provider import EciProvider
from vk_eci.cloud.provider_state import ProviderSettings
from vk_eci.emulator import Emulator
from vk_eci.provider import ClaimData, ConfigMapData, PodLifecycleHandler, SecretData

pytestmark = pytest.mark.integration


class Resources:
    """A small in-memory PodResources (the cluster side serves these from the API server)."""

    def __init__(self) -> None:
        self.secrets = {("default", "db"): SecretData("Opaque", {"pw": b"hunter2"})}

    async def secret(self, namespace: str, name: str) -> SecretData | None:
        return self.secrets.get((namespace, name))

    async def config_map(self, namespace: str, name: str) -> ConfigMapData | None:
        return None

    async def service_env(self, namespace: str) -> Mapping[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}

    async def service_account_token(self, pod: Any, audience: str | None,
                                    expiration_seconds: int | None) -> str:
        return "token"

    async def persistent_volume_claim(self, namespace: str, name: str) -> ClaimData | None:
        return None


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    async def record(self, pod: Any, type: str, reason: str, message: str) -> None:
        self.events.append((pod.metadata.name, type, reason, message))


def make_provider(emu: Emulator, node: str = "virtual-kubelet",
                  recorder: Recorder | None = None) -> EciProvider:
    client = EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                       endpoint=emu.endpoint, protocol="http",
                                       backoff_base=0.001, backoff_cap=0.01))
    settings = ProviderSettings(Placement(region_id="cn-hangzhou", vswitch_ids=("vsw-1",),
                                          security_group_id="sg-1", zone_id="cn-hangzhou-k"),
                                cluster_name="test", node_name=node)
    return EciProvider(client, settings, Resources(), events=recorder)


def make_pod(name: str, uid: str | None = None, image: str = "busybox:1.36",
             **spec: Any) -> V1Pod:
    containers = spec.pop("containers", None) or [V1Container(
        name="main", image=image, command=["sleep", "3600"],
        env=[V1EnvVar(name="PW", value_from=V1EnvVarSource(
            secret_key_ref=V1SecretKeySelector(name="db", key="pw")))])]
    return V1Pod(metadata=V1ObjectMeta(name=name, namespace="default", uid=uid or f"uid-{name}"),
                 spec=V1PodSpec(node_name="virtual-kubelet", containers=containers,
                                termination_grace_period_seconds=30, **spec))


async def test_lifecycle_create_status_delete(emulator: Emulator) -> None:
    recorder = Recorder()
    provider = make_provider(emulator, recorder=recorder)
    assert isinstance(provider, PodLifecycleHandler)
    pod = make_pod("web")
    await provider.create_pod(pod)
    sent = emulator.recorded("CreateContainerGroup")[-1]
    assert sent["ClientToken"] == "uid-web"
    assert sent["ContainerGroupName"].startswith("default-web-")
    assert sent["Container.1.EnvironmentVar.1.Key"] == "KUBERNETES_SERVICE_HOST"
    assert (sent["Container.1.EnvironmentVar.2.Key"],
            sent["Container.1.EnvironmentVar.2.Value"]) == ("PW", "hunter2")
    tags = {sent[f"Tag.{i}.Key"]: sent[f"Tag.{i}.Value"] for i in range(1, 6)}
    assert tags["vk-eci.io/node"] == "virtual-kubelet" and tags["k8s.aliyun.com/pod-uid"] == (
        "uid-web")
    # Until a listing that started after the create, the pod is not reported missing.
    assert await provider.get_pod_status("default", "web") is not None

    pushed: list[Any] = []

    async def on_status(p: Any) -> None:
        pushed.append(p.status)

    provider.notify_pods(on_status)
    emulator.clock.advance(120)
    pods = await provider.get_pods()
    assert [p.metadata.name for p in pods] == ["web"]
    status = await provider.get_pod_status("default", "web")
    assert status.phase == "Running"
    assert status.pod_ip
    assert {c.type: c.status for c in status.conditions}["Ready"] == "True"
    assert status.container_statuses[0].state.running is not None
    assert len(pushed) == 1
    await provider.refresh()
    assert len(pushed) == 1  # unchanged: nothing pushed again
    reasons = [e[2] for e in recorder.events]
    assert reasons and len(reasons) == len(set(reasons))  # copied once each
    await provider.refresh()
    assert [e[2] for e in recorder.events] == reasons

    before = len(emulator.recorded("DeleteContainerGroup"))
    await provider.delete_pod(pod)
    await provider.delete_pod(pod)  # a repeat while Terminating sends nothing more
    assert len(emulator.recorded("DeleteContainerGroup")) == before + 1
    emulator.clock.advance(120)
    await provider.refresh()
    assert await provider.get_pod_status("default", "web") is None
    await provider.delete_pod(pod)  # absent: not an error


async def test_status_refresh_is_batched(emulator: Emulator) -> None:
    provider = make_provider(emulator)
    other = make_provider(emulator, node="other-node")
    await other.create_pod(make_pod("foreign"))
    n = 45
    for i in range(n):
        await provider.create_pod(make_pod(f"p{i}"))
    before = len(emulator.recorded("DescribeContainerGroups"))
    pods = await provider.get_pods()
    calls = len(emulator.recorded("DescribeContainerGroups")) - before
    assert calls == math.ceil(n / 20)
    assert sorted(p.metadata.name for p in pods) == sorted(f"p{i}" for i in range(n))
    assert [p.metadata.name for p in await other.get_pods()] == ["foreign"]


async def test_repeated_create_makes_one_group(emulator: Emulator) -> None:
    provider = make_provider(emulator)
    pod = make_pod("idem")
    await provider.create_pod(pod)
    await provider.create_pod(pod)
    changed = make_pod("idem", image="busybox:1.35")  # same UID, different request
    await provider.create_pod(changed)
    groups = await provider.client.describe_container_groups(
        name=naming.group_name("default", "idem"))
    assert len(groups) == 1


async def test_refused_pod_never_reaches_eci(emulator: Emulator) -> None:
    provider = make_provider(emulator)
    pod = make_pod("hp", volumes=[V1Volume(name="logs",
                                           host_path=V1HostPathVolumeSource(path="/var/log"))])
    with pytest.raises(InvalidInput) as info:
        await provider.create_pod(pod)
    assert "hostPath" in str(info.value)
    assert emulator.recorded("CreateContainerGroup") == []


async def test_job_exit_codes(emulator: Emulator) -> None:
    provider = make_provider(emulator)
    ok = make_pod("ok", restart_policy="Never", containers=[V1Container(
        name="main", image="busybox:1.36", command=["sh", "-c", "exit 0"])])
    bad = make_pod("bad", restart_policy="Never", containers=[V1Container(
        name="main", image="busybox:1.36", command=["sh", "-c", "exit 3"])])
    await provider.create_pod(ok)
    await provider.create_pod(bad)
    emulator.clock.advance(300)
    await provider.refresh()
    ok_status = await provider.get_pod_status("default", "ok")
    bad_status = await provider.get_pod_status("default", "bad")
    assert ok_status.phase == "Succeeded"
    assert bad_status.phase == "Failed"
    assert bad_status.container_statuses[0].state.terminated.exit_code == 3


async def test_missing_pull_secret_is_said_not_silently_skipped(emulator: Emulator) -> None:
    recorder = Recorder()
    provider = make_provider(emulator, recorder=recorder)
    pod = make_pod("private", image_pull_secrets=[V1LocalObjectReference(name="regcred-typo")])
    await provider.create_pod(pod)
    warnings = [e for e in recorder.events if e[2] == "FailedToRetrieveImagePullSecret"]
    assert len(warnings) == 1
    assert warnings[0][1] == "Warning" and "regcred-typo" in warnings[0][3]
    # Skipped as the kubelet does: the group is still created, without a credential.
    sent = emulator.recorded("CreateContainerGroup")[-1]
    assert not any(k.startswith("ImageRegistryCredential") for k in sent)


async def test_max_pending_minute_fails_a_group_stuck_pending_and_deletes_it(
        emulator: Emulator) -> None:
    import asyncio

    from vk_eci.cloud.placement.annotations import MAX_PENDING

    emulator.state.registries.add_private("private.example.com", "u", "p")
    recorder = Recorder()
    provider = make_provider(emulator, recorder=recorder)
    now = [1000.0]
    provider.clock = lambda: now[0]
    stuck = make_pod("stuck", image="private.example.com/app:1")   # never pulls: Pending
    stuck.metadata.annotations = {MAX_PENDING: "10"}
    free = make_pod("free", image="private.example.com/app:1")     # no limit of ours
    for pod in (stuck, free):
        await provider.create_pod(pod)
    emulator.clock.advance(120)

    async def phases() -> dict[str, str]:
        return {p.metadata.name: p.status.phase for p in await provider.get_pods()}

    assert await phases() == {"stuck": "Pending", "free": "Pending"}   # counting from here
    now[0] += 599
    assert await phases() == {"stuck": "Pending", "free": "Pending"}
    now[0] += 2
    pods = {p.metadata.name: p for p in await provider.get_pods()}
    assert pods["stuck"].status.phase == "Failed"
    assert pods["stuck"].status.reason == "PendingTimeout"
    assert "10 minute(s)" in pods["stuck"].status.message
    assert pods["free"].status.phase == "Pending"
    await asyncio.gather(*list(provider._event_tasks))
    assert len(emulator.recorded("DeleteContainerGroup")) == 1
    assert [e[2] for e in recorder.events if e[0] == "stuck"].count("PendingTimeout") == 1
    # Nothing ran, so the group is gone at once; the pod stays Failed (the status sync
    # never touches a Failed pod whose group is gone).
    assert "stuck" not in await phases()


async def test_a_busy_event_copier_holds_only_the_newest_description_of_each_group(
        emulator: Emulator) -> None:
    """While the copier waits on a slow event write, later polls' descriptions of the same
    group replace the queued one: a busy node holds one group model per pod, not one per
    poll, and every event is still copied once."""
    import asyncio

    gate = asyncio.Event()
    gate.set()

    class SlowRecorder(Recorder):
        async def record(self, pod: Any, type: str, reason: str, message: str) -> None:
            await gate.wait()
            await super().record(pod, type, reason, message)

    recorder = SlowRecorder()
    provider = make_provider(emulator, recorder=recorder)
    await provider.create_pod(make_pod("web"))
    await provider.create_pod(make_pod("job"))
    emulator.clock.advance(120)
    tags = naming.node_tags("test", "virtual-kubelet")

    async def describe() -> list[Any]:
        return await provider.client.describe_container_groups(tags=tags, with_event=True)

    first = await describe()
    recorder.events.clear()   # (the creates' own events)
    gate.clear()
    provider._queue_event_copies(first)
    await asyncio.sleep(0.05)   # the copier is in its first (blocked) write now
    second, third = await describe(), await describe()
    provider._queue_event_copies(second)
    provider._queue_event_copies(third)
    queued = list(provider._copy_queue.values())
    assert len(queued) == 2 and all(any(g is n for n in third) for g in queued), \
        "the queue holds the newest description of each group, one per pod"
    assert not any(any(g is o for g in queued) for o in second)
    gate.set()
    await asyncio.gather(*list(provider._event_tasks))
    assert not provider._copy_queue
    copied = [(e[0], e[2]) for e in recorder.events]
    assert sorted(copied) == sorted(set(copied)), f"an event copied twice: {copied}"
    assert {r for _, r in copied} >= {"Pulling", "Pulled", "Created", "Started"}
    assert {n for n, _ in copied} == {"web", "job"}


async def test_stopping_cancels_the_queued_event_copies_without_a_log_line_each(
        emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """A node stopping with copies queued (a burst of starts) cancels them before its API
    clients close: without that, each queued pod's copy failed on the closed session and
    logged a traceback, thousands of lines."""
    import asyncio

    gate = asyncio.Event()
    gate.set()   # open for the creates' own events

    class StuckRecorder(Recorder):
        async def record(self, pod: Any, type: str, reason: str, message: str) -> None:
            await gate.wait()   # shut below: the write hangs as on a closing client

    provider = make_provider(emulator, recorder=StuckRecorder())
    for name in ("a", "b", "c"):
        await provider.create_pod(make_pod(name))
    emulator.clock.advance(120)
    groups = await provider.client.describe_container_groups(
        tags=naming.node_tags("test", "virtual-kubelet"), with_event=True)
    gate.clear()
    provider._queue_event_copies(groups)
    await asyncio.sleep(0.05)   # the copier is blocked in its first write, two pods queued
    assert provider._copier is not None and not provider._copier.done()
    await asyncio.wait_for(provider.stop_background(), 5)
    assert provider._copier.cancelled()
    assert not provider._event_tasks and not provider._copy_queue
    assert not [r for r in caplog.records if "copying ECI events failed" in r.getMessage()]


async def test_a_cached_description_drops_its_events_once_they_are_copied(
        emulator: Emulator) -> None:
    """The cache holds every group's description until the next listing; its events (a third
    of it) only until they are copied. Each event is still copied once, over listings and
    polls, and the pod's status reads the same."""
    import asyncio

    recorder = Recorder()
    provider = make_provider(emulator, recorder=recorder)
    await provider.create_pod(make_pod("web"))
    provider.notify_pods(lambda p: asyncio.sleep(0))
    emulator.clock.advance(120)
    await provider.refresh()
    reasons = sorted(e[2] for e in recorder.events)
    assert {"Pulling", "Pulled", "Created", "Started"} <= set(reasons)
    [group] = provider._groups.values()
    assert group.events is None, [e.reason for e in group.events]
    assert (await provider.get_pod_status("default", "web")).phase == "Running"
    await provider.refresh()  # a new description, its events again: none copied twice
    assert sorted(e[2] for e in recorder.events) == reasons
    assert next(iter(provider._groups.values())).events is None


async def test_the_spot_release_warning_stays_in_the_cached_description(
        emulator: Emulator) -> None:
    """The status of a reclaimed spot group is read from ECI's SpotToBeReleased warning:
    that event is kept after the copy, the others are dropped."""
    import asyncio

    from vk_eci.cloud.groups import spot

    recorder = Recorder()
    provider = make_provider(emulator, recorder=recorder)
    pod = make_pod("spot")
    pod.metadata.annotations = {"k8s.aliyun.com/eci-spot-strategy": "SpotAsPriceGo"}
    await provider.create_pod(pod)
    provider.notify_pods(lambda p: asyncio.sleep(0))
    emulator.clock.advance(120)
    await provider.refresh()
    [group] = provider._groups.values()
    expires = emulator.preempt(group.container_group_id)
    emulator.clock.set(expires - 60)  # warned (after the hour of protection), not yet ended
    await provider.refresh()
    [group] = provider._groups.values()
    assert [e.reason for e in group.events or []] == [spot.WARNING_REASON]
    assert spot.warned(group)
    assert "SpotToBeReleased" in [e[2] for e in recorder.events]


async def test_a_resync_leaves_out_the_pods_the_caller_holds_until_ecis_answer_changes(
        emulator: Emulator) -> None:
    provider = make_provider(emulator)
    pods = {name: make_pod(name) for name in ("a", "b")}
    for pod in pods.values():
        await provider.create_pod(pod)
    emulator.clock.advance(120)
    held: dict[str, int | None] = {}
    asked: list[tuple[str, str | None]] = []

    def settled(key: str, uid: str | None, fingerprint: int) -> bool:
        asked.append((key, uid))
        return held.get(key) == fingerprint

    changes, present = await provider.resync(settled)
    assert present == {"default/a", "default/b"}
    assert sorted(c.pod.metadata.name for c in changes) == ["a", "b"]
    assert sorted(asked) == [("default/a", "uid-a"), ("default/b", "uid-b")]
    assert all(c.fingerprint is not None and c.pod.status.phase == "Running" for c in changes)
    held = {f"default/{c.pod.metadata.name}": c.fingerprint for c in changes}
    # Nothing changed in ECI: the same fingerprints, and nothing is built for the caller.
    changes, present = await provider.resync(settled)
    assert changes == [] and present == {"default/a", "default/b"}
    # A group that changed in ECI has a new fingerprint: its status is built again.
    await provider.delete_pod(pods["a"])
    changes, _ = await provider.resync(settled)
    assert [c.pod.metadata.name for c in changes] == ["a"]
    assert changes[0].fingerprint != held["default/a"]
    # Without ``settled`` every pod is built, as before.
    changes, _ = await provider.resync()
    assert sorted(c.pod.metadata.name for c in changes) == ["a", "b"]


async def test_a_listing_keeps_the_description_it_holds_while_ecis_answer_is_the_same(
        emulator: Emulator) -> None:
    """A group whose answer is the same as when its description was built is not read into
    new models: the listing hands back the description it holds (its events already copied
    and dropped). A group whose answer changed is read again in full."""
    provider = make_provider(emulator, recorder=Recorder())
    pods = {name: make_pod(name) for name in ("a", "b")}
    for pod in pods.values():
        await provider.create_pod(pod)
    emulator.clock.advance(120)
    await provider.refresh()

    def held() -> dict[str, Any]:
        return {tag(g, naming.TAG_POD_NAME): g for g in provider.groups()}

    first = held()
    assert sorted(first) == ["a", "b"] and all(g.events is None for g in first.values())
    await provider.refresh()
    second = held()
    assert all(second[n] is first[n] for n in first), "an unchanged answer was read again"
    await provider.delete_pod(pods["a"])
    await provider.refresh()
    third = held()
    assert third["b"] is first["b"]
    assert third["a"] is not first["a"] and third["a"].status != first["a"].status


async def test_an_event_whose_copy_failed_is_copied_from_the_next_unchanged_answer(
        emulator: Emulator) -> None:
    """A description drops its events once copied. When a copy failed, the next answer must
    be read in full, though ECI answers as before, or that event is never copied."""
    failing = {"Started"}

    class FlakyRecorder(Recorder):
        async def record_copy(self, pod: Any, type: str, reason: str, message: str, *,
                              key: str, count: int | None, first: Any, last: Any) -> bool:
            if reason in failing:
                return False  # not written (the API server refused it)
            await self.record(pod, type, reason, message)
            return True

    recorder = FlakyRecorder()
    provider = make_provider(emulator, recorder=recorder)
    await provider.create_pod(make_pod("web"))
    emulator.clock.advance(120)
    await provider.refresh()
    reasons = [e[2] for e in recorder.events]
    assert "Pulled" in reasons and "Started" not in reasons
    failing.clear()
    await provider.refresh()
    assert [e[2] for e in recorder.events].count("Started") == 1
    assert sorted(e[2] for e in recorder.events) == sorted({*reasons, "Started"})
    before = list(provider.groups())
    await provider.refresh()  # all copied now: the held description serves again
    assert [g is b for g, b in zip(provider.groups(), before, strict=True)] == [True]


async def test_a_follow_up_answered_as_before_reports_no_change(emulator: Emulator) -> None:
    """A group read again a few seconds after its change (for its late events) that ECI
    answers as before is neither reported as a status change nor copied from again."""
    import asyncio

    from vk_eci.cloud.groups.follow import FollowUps

    now = [0.0]
    recorder = Recorder()
    provider = make_provider(emulator, recorder=recorder)
    provider._follow = FollowUps(clock=lambda: now[0])
    await provider.create_pod(make_pod("web"))
    await provider.refresh()
    phases: list[str] = []
    while "Running" not in phases and len(phases) < 120:
        emulator.clock.advance(1)  # one poll per (emulated) second, as the node runs them
        changes = await provider.changed_pods()
        assert changes is not None
        phases += [c.pod.status.phase for c in changes] or ["-"]
    assert phases[-1] == "Running"
    await asyncio.gather(*provider._event_tasks)  # the change's events, copied beside
    copied = list(recorder.events)
    assert "Started" in [e[2] for e in copied]
    reads = len(emulator.recorded("DescribeContainerGroups"))
    now[0] += 10  # the first follow-up is due, and waited long enough for company
    emulator.clock.advance(1)
    assert await provider.changed_pods() == []
    assert recorder.events == copied
    assert len(emulator.recorded("DescribeContainerGroups")) == reads + 1  # it was read
