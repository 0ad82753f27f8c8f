"""Parts of the pod controller and status sync: cache_result labels, status comparison, and
no second write of a status already being written."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    V1Container,
    V1HostIP,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
)

from vk_eci.cluster.pods.controller import cache_result
from vk_eci.cluster.pods.sync import StatusSync, comparable, keep_transition_times, transition_time
from vk_eci.config import Settings
from vk_eci.metrics import Metrics
from vk_eci.provider import StatusChange


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


class _Pods:
    """The few parts of the pod controller the status sync uses: an informer cache, tracked
    pods, metrics, and a status write that takes a while (as it does under load)."""

    def __init__(self) -> None:
        self.settings = Settings(region="cn-hangzhou", vswitches=("vsw-a",), security_group="sg-a")
        self.on_created: list[object] = []
        self.tracked: dict[str, object] = {}
        self.metrics = Metrics()
        self.informer = SimpleNamespace(cache={})
        self.patches: list[dict[str, object]] = []
        self.gone = False
        self.write_seconds = 0.05
        self.windows: list[tuple[float, float]] = []  # (start, end) of each write
        self.two_written = asyncio.Event()
        self.written = asyncio.Event()

    async def patch_status(self, pod: V1Pod, status: dict[str, object],
                           annotations: object = None) -> bool:
        self.patches.append(status)
        start = time.monotonic()
        await asyncio.sleep(self.write_seconds)
        self.windows.append((start, time.monotonic()))
        self.written.set()
        if len(self.windows) >= 2:
            self.two_written.set()
        return not self.gone


def _pair(phase: str) -> tuple[V1Pod, V1Pod]:
    meta = V1ObjectMeta(name="p", namespace="n", uid="u1", resource_version="7")
    have = V1Pod(metadata=meta, status=V1PodStatus(phase="Pending", host_ip="10.0.0.1",
                                                   host_ips=[V1HostIP(ip="10.0.0.1")]))
    cloud = V1Pod(metadata=V1ObjectMeta(name="p", namespace="n", uid="u1", annotations={}),
                  status=V1PodStatus(phase=phase, host_ip="10.0.0.1",
                                     host_ips=[V1HostIP(ip="10.0.0.1")]))
    return have, cloud


@contextlib.asynccontextmanager
async def _status_sync() -> AsyncIterator[tuple[_Pods, StatusSync]]:
    """A status sync over :class:`_Pods` whose informer holds pod n/p, Pending."""
    pods = _Pods()
    pods.informer.cache["n/p"] = _pair("Pending")[0]
    async with ApiClient() as api:
        yield pods, StatusSync(api, pods)  # type: ignore[arg-type]


async def test_a_poll_and_a_resync_meeting_one_change_write_it_once() -> None:
    pods = _Pods()
    api = ApiClient()
    try:
        sync = StatusSync(api, pods)  # type: ignore[arg-type]
        have, cloud = _pair("Running")
        # Both read the same informer pod before either write has returned.
        await asyncio.gather(sync._sync_one("n/p", have, cloud),
                             sync._sync_one("n/p", have, cloud))
        assert [p["phase"] for p in pods.patches] == ["Running"]
        # Another pass while the informer still shows the old pod: still nothing new to write.
        await sync._sync_one("n/p", have, cloud)
        assert len(pods.patches) == 1
        # A different status for the same old pod is written.
        _, failed = _pair("Failed")
        await sync._sync_one("n/p", have, failed)
        assert [p["phase"] for p in pods.patches] == ["Running", "Failed"]
    finally:
        await api.close()


async def test_a_write_that_did_not_land_is_tried_again() -> None:
    pods = _Pods()
    pods.gone = True  # the API server said 404/409: nothing was written
    api = ApiClient()
    try:
        sync = StatusSync(api, pods)  # type: ignore[arg-type]
        have, cloud = _pair("Running")
        await sync._sync_one("n/p", have, cloud)
        pods.gone = False
        await sync._sync_one("n/p", have, cloud)
        assert [p["phase"] for p in pods.patches] == ["Running", "Running"]
        assert sync.writes == 1
    finally:
        await api.close()


async def test_the_provider_follows_the_informers_newest_pod_not_the_created_one() -> None:
    """A created pod's later versions (our own status writes come back as new objects) reach
    the provider, so it does not keep the version it saw at create time beside the informer's
    (a second copy of every pod the node runs)."""
    from vk_eci.cluster.kube.events import KubeEventRecorder
    from vk_eci.cluster.pods.controller import PodController

    class Provider:
        def __init__(self) -> None:
            self.created: list[V1Pod] = []
            self.followed: list[V1Pod] = []

        async def create_pod(self, pod: V1Pod) -> None:
            self.created.append(pod)

        def track(self, pod: V1Pod) -> None:
            self.followed.append(pod)

    def version(rv: str, uid: str = "u1") -> V1Pod:
        return V1Pod(metadata=V1ObjectMeta(name="p", namespace="n", uid=uid,
                                           resource_version=rv),
                     spec=V1PodSpec(containers=[V1Container(name="c", image="busybox")]),
                     status=V1PodStatus(phase="Pending"))

    settings = Settings(region="cn-hangzhou", vswitches=("vsw-a",), security_group="sg-a")
    async with ApiClient() as api:
        provider = Provider()
        pods = PodController(api, settings, provider,  # type: ignore[arg-type]
                             KubeEventRecorder(api, "vk"), Metrics())
        first = version("1")
        pods.informer.cache["n/p"] = first
        await pods.handle("n/p")
        assert provider.created == [first] and provider.followed == []
        newer = version("2")
        newer.status = V1PodStatus(phase="Running")
        pods.informer.cache["n/p"] = newer
        await pods.handle("n/p")
        assert provider.created == [first], "created once"
        assert provider.followed[-1] is newer


class _Polls:
    """A provider whose successive polls report the given pods as changed."""

    def __init__(self, *batches: list[V1Pod]) -> None:
        self.batches = list(batches)
        self.asked: list[float] = []

    async def changed_pods(self) -> list[StatusChange]:
        self.asked.append(time.monotonic())
        return [StatusChange(p) for p in self.batches.pop(0)] if self.batches else []

    async def resync(self, settled: object = None) -> tuple[list[StatusChange], set[str]]:
        return [], {"n/p"}

    def busy(self) -> bool:
        return True


async def test_the_next_poll_reads_while_the_previous_polls_writes_go_on() -> None:
    """A poll's writes take seconds under load (hundreds of changes after a burst of starts);
    the next poll reads ECI meanwhile instead of after them. The writes keep poll order: the
    second poll's write starts once the first's has ended, so an older status never lands
    over a newer one."""
    pods = _Pods()
    pods.write_seconds = 1.0
    api = ApiClient()
    try:
        sync = StatusSync(api, pods)  # type: ignore[arg-type]
        have, running = _pair("Running")
        _, failed = _pair("Failed")
        pods.informer.cache["n/p"] = have
        provider = _Polls([running], [failed])
        task = asyncio.create_task(sync._run_incremental(provider))
        try:
            await asyncio.wait_for(pods.two_written.wait(), 10)
        finally:
            task.cancel()
        assert [p["phase"] for p in pods.patches] == ["Running", "Failed"]
        (_, first_end), (second_start, _) = pods.windows
        assert provider.asked[1] < first_end, "the second poll waited for the first's writes"
        assert second_start >= first_end, "the second poll's write overtook the first's"
    finally:
        await api.close()


async def test_a_polls_failed_writes_do_not_drop_the_next_polls_changes(
        caplog: pytest.LogCaptureFixture) -> None:
    """The writes beside the polls fail on their own: the failure is logged as theirs, and the
    next poll's changes (which the poller already counts as applied) are still written."""
    pods = _Pods()
    api = ApiClient()
    try:
        sync = StatusSync(api, pods)  # type: ignore[arg-type]
        have, running = _pair("Running")
        pods.informer.cache["n/p"] = have
        provider = _Polls([running], [running])
        apply = sync.apply
        calls = 0

        async def failing_once(changes: list[StatusChange]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("the API server went away")
            await apply(changes)

        sync.apply = failing_once  # type: ignore[method-assign]
        task = asyncio.create_task(sync._run_incremental(provider))
        try:
            await asyncio.wait_for(pods.written.wait(), 10)
        finally:
            task.cancel()
        assert [p["phase"] for p in pods.patches] == ["Running"]
        assert any("status writes of a poll failed" in r.getMessage() for r in caplog.records)
    finally:
        await api.close()



async def test_a_resync_never_writes_its_older_status_over_a_polls_newer_one() -> None:
    """A full listing takes minutes at thousands of pods and its writes follow slice by
    slice; a pod that a poll read after the listing began (here: Failed, written) keeps the
    poll's status, not the listing's older Running."""
    async with _status_sync() as (pods, sync):
        running, failed = _pair("Running")[1], _pair("Failed")[1]
        listed, later = asyncio.Event(), asyncio.Event()

        class SlowListing(_Polls):
            after = 0  # polls since the listing ended

            async def resync(self, settled: object = None) -> tuple[list[StatusChange], set[str]]:
                # The page with this pod was read before the poll's change...
                await pods.written.wait()  # ...and the listing ends after the poll's write.
                listed.set()
                return [StatusChange(running)], {"n/p"}

            async def changed_pods(self) -> list[StatusChange]:
                if listed.is_set():
                    self.after += 1
                    if self.after == 3:  # a few polls after the listing: the resync is over
                        later.set()
                return await super().changed_pods()

        provider = SlowListing([], [failed])
        task = asyncio.create_task(sync._run_incremental(provider))
        try:
            await asyncio.wait_for(later.wait(), 10)
        finally:
            task.cancel()
        assert [p["phase"] for p in pods.patches] == ["Failed"]
        assert sync._resync_began is None and not sync._polled


async def test_a_resync_neither_builds_nor_compares_a_pod_it_found_equal_before() -> None:
    """Most pods at rest: the same pod version and the same answer from ECI as at the last
    listing, which found them equal. A new pod version (or a new answer) is compared again."""
    async with _status_sync() as (pods, sync):
        built: list[int] = []

        class Listing(_Polls):
            fingerprint = 1
            phase = "Pending"

            async def resync(self, settled: object = None
                             ) -> tuple[list[StatusChange], set[str]]:
                assert callable(settled)
                if settled("n/p", "u1", self.fingerprint):
                    return [], {"n/p"}
                built.append(self.fingerprint)
                return [StatusChange(_pair(self.phase)[1], fingerprint=self.fingerprint)], {
                    "n/p"}

        provider = Listing()
        await sync._resync(provider)  # type: ignore[arg-type]
        await sync._resync(provider)  # type: ignore[arg-type]
        assert built == [1] and pods.patches == []
        provider.fingerprint, provider.phase = 2, "Running"  # ECI's answer changed
        await sync._resync(provider)  # type: ignore[arg-type]
        assert built == [1, 2] and [p["phase"] for p in pods.patches] == ["Running"]
        await sync._resync(provider)  # the write's new pod version has not come back yet
        assert built == [1, 2, 2] and len(pods.patches) == 1
        _, newer = _pair("Running")  # the pod as written: ECI's status
        newer.metadata.resource_version = "8"
        pods.informer.cache["n/p"] = newer  # the write came back: equal, remembered, skipped
        await sync._resync(provider)  # type: ignore[arg-type]
        await sync._resync(provider)  # type: ignore[arg-type]
        assert built == [1, 2, 2, 2] and len(pods.patches) == 1
