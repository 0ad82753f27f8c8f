"""EciClient against the ECI emulator over HTTP: paging, id chunks, retries, metrics, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.api.client import POOL_SIZE, EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.errors import NotFound, Permanent, Retryable
from vk_eci.cloud.groups.status import group_to_pod_status
from vk_eci.emulator import Emulator
from vk_eci.metrics import Metrics

pytestmark = pytest.mark.integration
R = "cn-hangzhou"


def make_client(emu: Emulator, metrics: Metrics | None = None, sleeps: list[float] | None = None,
                **kw: Any) -> EciClient:
    async def record_sleep(delay: float) -> None:
        if sleeps is not None:
            sleeps.append(delay)

    host, port = emu.endpoint.rsplit(":", 1)
    settings: dict[str, Any] = {"backoff_base": 0.001, "backoff_cap": 0.01}
    settings.update(kw)
    config = EciClientConfig(region_id=R, credential=AccessKey("AK", "SK"),
                             endpoint=f"{host}:{port}", protocol="http", **settings)
    return EciClient(config, metrics, sleep=record_sleep)


def group_req(name: str, token: str | None = None,
              tag: str = "t1") -> m.CreateContainerGroupRequest:
    return m.CreateContainerGroupRequest(
        region_id=R, container_group_name=name, security_group_id="sg-1", v_switch_id="vsw-1",
        client_token=token, cpu=0.25, memory=0.5,
        tag=[m.CreateContainerGroupRequestTag(key="suite", value=tag)],
        container=[m.CreateContainerGroupRequestContainer(name="c", image="busybox",
                                                          cpu=0.25, memory=0.5)])


def count(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_paging_and_id_chunks(emulator: Emulator) -> None:
    client = make_client(emulator)
    ids = [await client.create_container_group(group_req(f"g-{i}")) for i in range(45)]
    await client.create_container_group(group_req("other", tag="t2"))
    before = len(emulator.recorded("DescribeContainerGroups"))
    groups = await client.describe_container_groups(tags={"suite": "t1"})
    calls = emulator.recorded("DescribeContainerGroups")[before:]
    assert sorted(g.container_group_id for g in groups) == sorted(ids)
    assert len(calls) == 3  # ceil(45 / 20)
    assert all(c["Limit"] == "20" for c in calls)
    before = len(emulator.recorded("DescribeContainerGroups"))
    by_id = await client.describe_container_groups(ids=ids)
    calls = emulator.recorded("DescribeContainerGroups")[before:]
    assert sorted(g.container_group_id for g in by_id) == sorted(ids)
    assert sorted(len(json.loads(c["ContainerGroupIds"])) for c in calls) == [5, 20, 20]
    assert await client.describe_container_groups(ids=[]) == []
    named = await client.describe_container_groups(name="g-7")
    assert [g.container_group_id for g in named] == [ids[7]]


async def test_id_chunks_are_read_a_few_at_once_and_answered_in_order(
        emulator: Emulator) -> None:
    """A poll that found hundreds of changed groups reads them 20 a call, ID_CALLS_IN_FLIGHT
    calls at once (not one after another, not all at once), and gets them in its order."""
    from vk_eci.cloud.api.client import ID_CALLS_IN_FLIGHT

    client = make_client(emulator)
    ids = [await client.create_container_group(group_req(f"g-{i}")) for i in range(130)]
    wanted = list(reversed(ids))
    in_flight, most = 0, 0
    call = client._call

    async def counting(action: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await call(action, *args, **kwargs)
        finally:
            in_flight -= 1

    client._call = counting  # type: ignore[method-assign]
    emulator.faults.set_latency(0.2, "DescribeContainerGroups")
    try:
        groups = await client.describe_container_groups(ids=wanted)
        statuses = await client.describe_container_group_status(ids=wanted)
    finally:
        emulator.faults.set_latency(0.0, "DescribeContainerGroups")
    assert [g.container_group_id for g in groups] == wanted
    assert [s.container_group_id for s in statuses] == wanted
    assert most == ID_CALLS_IN_FLIGHT   # 7 calls of 20 ids each, 4 at once


async def test_after_a_failed_id_call_no_further_call_is_made(emulator: Emulator) -> None:
    """A poll's id calls that fail (a permanent error answers every one) stop after the calls
    in flight: the rest would spend the action's budget on the same answer."""
    from vk_eci.cloud.api.client import ID_CALLS_IN_FLIGHT

    client = make_client(emulator)
    ids = [await client.create_container_group(group_req(f"g-{i}")) for i in range(130)]
    calls = 0
    call = client._call

    async def counting(action: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await call(action, *args, **kwargs)

    client._call = counting  # type: ignore[method-assign]
    emulator.faults.set_latency(0.2, "DescribeContainerGroups")
    emulator.faults.inject("DescribeContainerGroups", "InvalidParameter", status=400)
    try:
        with pytest.raises(Permanent):
            await client.describe_container_groups(ids=ids)
    finally:
        emulator.faults.clear()
    assert calls == ID_CALLS_IN_FLIGHT   # of 7: those in flight when the first failed


async def test_client_token_makes_create_idempotent(emulator: Emulator) -> None:
    client = make_client(emulator)
    first = await client.create_container_group(group_req("idem", token="uid-1"))
    again = await client.create_container_group(group_req("idem", token="uid-1"))
    assert first == again
    assert len(await client.describe_container_groups(name="idem")) == 1


async def test_throttling_and_5xx_are_retried_with_metrics(emulator: Emulator) -> None:
    metrics = Metrics()
    sleeps: list[float] = []
    client = make_client(emulator, metrics, sleeps)
    emulator.faults.throttle("DescribeRegions", count=2)
    emulator.faults.server_error("DescribeRegions", count=1)
    regions = await client.describe_regions()
    assert any(r.region_id == R for r in regions)
    assert len(emulator.recorded("DescribeRegions")) == 4
    assert len(sleeps) == 3
    assert count(metrics, "vk_eci_eci_api_retries_total",
                 {"action": "DescribeRegions", "kind": "throttled"}) == 2
    assert count(metrics, "vk_eci_eci_api_retries_total",
                 {"action": "DescribeRegions", "kind": "retryable"}) == 1
    assert count(metrics, "vk_eci_eci_api_requests_total",
                 {"action": "DescribeRegions", "code": "Throttling.User"}) == 2
    assert count(metrics, "vk_eci_eci_api_requests_total",
                 {"action": "DescribeRegions", "code": "OK"}) == 1
    assert count(metrics, "vk_eci_eci_api_request_duration_seconds_count",
                 {"action": "DescribeRegions"}) == 4


async def test_retry_after_hint_is_honoured(emulator: Emulator) -> None:
    sleeps: list[float] = []
    client = make_client(emulator, sleeps=sleeps, backoff_cap=5.0)
    emulator.faults.inject("DescribeRegions", "Throttling.User", count=1, retry_after=2.0)
    await client.describe_regions()
    assert sleeps and sleeps[0] >= 2.0


async def test_gives_up_after_max_attempts(emulator: Emulator) -> None:
    client = make_client(emulator, max_attempts=3)
    emulator.faults.server_error("DescribeRegions")
    with pytest.raises(Retryable) as info:
        await client.describe_regions()
    assert info.value.code == "InternalError"
    assert info.value.http_status >= 500
    assert len(emulator.recorded("DescribeRegions")) == 3


async def test_permanent_errors_are_not_retried(emulator: Emulator) -> None:
    client = make_client(emulator)
    with pytest.raises(NotFound):
        await client.delete_container_group("eci-doesnotexist")
    assert len(emulator.recorded("DeleteContainerGroup")) == 1
    bad = group_req("x")
    bad.container = []
    with pytest.raises(Permanent):
        await client.create_container_group(bad)


async def test_wrong_secret_is_permanent_and_not_echoed(emulator: Emulator) -> None:
    host_port = emulator.endpoint
    config = EciClientConfig(region_id=R, credential=AccessKey("AK", "WRONG-SECRET-123"),
                             endpoint=host_port, protocol="http")
    with pytest.raises(Permanent) as info:
        await EciClient(config).describe_regions()
    assert "WRONG-SECRET-123" not in str(info.value)


async def test_paused_emulator_times_out_as_retryable(emulator: Emulator) -> None:
    client = make_client(emulator, max_attempts=2, read_timeout=0.3, connect_timeout=0.3)
    emulator.faults.pause("reset")
    try:
        with pytest.raises(Retryable):
            await client.describe_regions()
    finally:
        emulator.faults.resume()


async def test_delete_and_image_caches(emulator: Emulator) -> None:
    client = make_client(emulator)
    gid = await client.create_container_group(group_req("gone"))
    await client.delete_container_group(gid)
    cache_id = await client.create_image_cache(m.CreateImageCacheRequest(
        region_id=R, image_cache_name="cache-a", image=["nginx:1.25"], security_group_id="sg-1",
        v_switch_id="vsw-1", tag=[m.CreateImageCacheRequestTag(key="suite", value="c")]))
    assert cache_id.startswith("imc-")
    by_id = await client.describe_image_caches(ids=[cache_id])
    by_name = await client.describe_image_caches(name="cache-a")
    by_tag = await client.describe_image_caches(tags={"suite": "c"})
    assert [c.image_cache_id for c in by_id] == [c.image_cache_id for c in by_name] == [
        c.image_cache_id for c in by_tag] == [cache_id]
    assert await client.describe_image_caches(ids=["imc-nope"]) == []
    await client.delete_image_cache(cache_id)
    with pytest.raises(NotFound):
        await client.delete_image_cache(cache_id)


async def test_update_replaces_a_container_image(emulator: Emulator) -> None:
    client = make_client(emulator)
    gid = await client.create_container_group(group_req("renewed"))
    emulator.clock.advance(120)  # Running: only Pending and Running groups can be updated

    def update(image: str) -> m.UpdateContainerGroupRequest:
        return m.UpdateContainerGroupRequest(
            container_group_id=gid, update_type="RenewUpdate",
            container=[m.UpdateContainerGroupRequestContainer(name="c", image=image, cpu=0.25,
                                                              memory=0.5)])

    await client.update_container_group(update("busybox:1.37"))
    [group] = await client.describe_container_groups(ids=[gid])
    assert [(c.name, c.image) for c in group.containers] == [("c", "busybox:1.37")]
    emulator.clock.advance(120)  # the update done
    with pytest.raises(Permanent, match="NoNeedUpdate"):
        await client.update_container_group(update("busybox:1.37"))
    assert len(emulator.recorded("UpdateContainerGroup")) == 2


async def test_a_container_an_update_restarts_counts_a_restart(emulator: Emulator) -> None:
    # ECI restarts what an UpdateContainerGroup changes; the restart shows in RestartCount,
    # and the node's pod status reports it as containerStatuses[].restartCount.
    client = make_client(emulator)
    req = group_req("restarts")
    req.container.append(m.CreateContainerGroupRequestContainer(name="keep", image="nginx",
                                                                cpu=0.25, memory=0.5))
    gid = await client.create_container_group(req)
    emulator.clock.advance(120)

    def update(image: str) -> m.UpdateContainerGroupRequest:
        return m.UpdateContainerGroupRequest(
            container_group_id=gid, update_type="RenewUpdate", container=[
                m.UpdateContainerGroupRequestContainer(name="c", image=image, cpu=0.25,
                                                       memory=0.5),
                m.UpdateContainerGroupRequestContainer(name="keep", image="nginx", cpu=0.25,
                                                       memory=0.5)])

    async def counts() -> dict[str, int]:
        [group] = await client.describe_container_groups(ids=[gid])
        pod = V1Pod(metadata=V1ObjectMeta(name="restarts", namespace="ns"), spec=V1PodSpec(
            containers=[V1Container(name="c", image="busybox"),
                        V1Container(name="keep", image="nginx")]))
        status = group_to_pod_status(group, pod)
        return {s.name: s.restart_count for s in status.container_statuses}

    assert await counts() == {"c": 0, "keep": 0}
    await client.update_container_group(update("busybox:1.37"))
    emulator.clock.advance(120)
    assert await counts() == {"c": 1, "keep": 0}
    await client.update_container_group(update("busybox:1.36"))
    assert await counts() == {"c": 2, "keep": 0}  # counted at once, while the new one pulls
    emulator.clock.advance(120)
    assert await counts() == {"c": 2, "keep": 0}


async def test_exec_is_retried_only_when_throttled(emulator: Emulator) -> None:
    # A command may have run before a 5xx or a timeout: running it twice could repeat a side
    # effect, so only a throttled (refused, never run) exec is tried again.
    client = make_client(emulator)
    group_id = await client.create_container_group(group_req("exec-retry"))
    emulator.faults.server_error("ExecContainerCommand", count=1)
    with pytest.raises(Retryable):
        await client.exec_container_command(group_id, "c", ["echo", "hi"])
    assert len(emulator.recorded("ExecContainerCommand")) == 1
    emulator.faults.throttle("ExecContainerCommand", count=1)
    with contextlib.suppress(Permanent):  # the group may not run yet; only the retry counts
        await client.exec_container_command(group_id, "c", ["echo", "hi"])
    assert len(emulator.recorded("ExecContainerCommand")) == 3


async def test_tags_are_added_and_replaced_in_chunks_of_fifty(emulator: Emulator) -> None:
    client = make_client(emulator, default_rate_limit=None)
    ids = [await client.create_container_group(group_req(f"tag-{i}")) for i in range(55)]
    await client.tag_container_groups(ids, {"suite": "t9", "extra": "x"})
    calls = emulator.recorded("TagResources")
    assert [c["ResourceType"] for c in calls] == ["ContainerGroup"] * 2  # ceil(55 / 50)
    assert await client.describe_container_groups(tags={"suite": "t1"}) == []
    [group] = await client.describe_container_groups(ids=[ids[-1]])
    assert {t.key: t.value for t in group.tags} == {"suite": "t9", "extra": "x"}
    assert len(await client.describe_container_groups(tags={"suite": "t9"})) == 55
    with pytest.raises(NotFound):
        await client.tag_container_groups(["eci-missing"], {"suite": "t9"})
    with pytest.raises(Permanent, match="at most 20"):
        await client.tag_container_groups(ids[:1], {f"k{i}": "v" for i in range(19)})
    [group] = await client.describe_container_groups(ids=[ids[0]])
    assert len(group.tags) == 2  # refused whole: nothing changed


async def test_calls_reuse_kept_alive_connections(emulator: Emulator) -> None:
    """240 calls, 8 at a time, travel over kept-alive connections, about one per call in
    flight (at most POOL_SIZE), not one new connection (and, over HTTPS, a TLS handshake and
    an SSL context) each."""
    client = make_client(emulator)
    before = emulator.connections
    in_flight = 8
    assert in_flight < POOL_SIZE
    sem = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with sem:
            await client.describe_container_groups()

    await asyncio.gather(*(one() for _ in range(240)))
    assert emulator.connections - before <= 2 * in_flight, emulator.connections - before


async def test_the_older_v2_signature_goes_the_sdks_own_way_and_works(
        emulator: Emulator) -> None:
    """The pooled transport signs ACS3 only; a client configured for the RPC ``v2`` signature
    is sent by the SDK itself (its own session per call), with the same results and errors."""
    client = make_client(emulator, signature_algorithm="v2")
    try:
        before = emulator.connections
        group_id = await client.create_container_group(group_req("v2-group", tag="v2"))
        [group] = await client.describe_container_groups(tags={"suite": "v2"})
        assert group.container_group_id == group_id
        assert emulator.connections - before == 2  # a connection per call: not our pool
        with pytest.raises(NotFound):
            await client.delete_container_group("eci-missing")
    finally:
        await client.close()
