"""The emulator's model options through the official SDK (docs/EMULATOR.md): auto-create on a
partial match, auto-created caches ageing out, ended groups forgotten, Go pull durations, and
ECI's ``Throttling`` code."""

from __future__ import annotations

import json

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.fixtures.emulator import EciCaller
from tests.integration.test_emulator_caches import DAY, R, get_cache, ready_cache
from tests.integration.test_emulator_groups import create, create_req, ctr, describe
from vk_eci.emulator import EciModel, Emulator, ManualClock

pytestmark = pytest.mark.integration


def _reasons(group: object) -> dict[str, str]:
    return {e.reason: e.message for e in group.events}  # type: ignore[attr-defined]


async def test_auto_create_on_partial_match(emulator: Emulator, eci_call: EciCaller) -> None:
    nginx = await ready_cache(emulator, eci_call, "nginx", ["nginx:1.7.9"])
    pod = [ctr(image="nginx:1.7.9"), ctr("side", image="redis:7")]
    gid = await create(eci_call, create_req("ga", auto_match_image_cache=True, containers=pod))
    events = _reasons(await describe(eci_call, gid))
    assert nginx in events["SuccessfulHitImageCache"] and "ImageCacheAutoCreated" not in events

    emulator.state.model = EciModel(auto_create="partial")
    gid = await create(eci_call, create_req("gb", auto_match_image_cache=True, containers=pod))
    events = _reasons(await describe(eci_call, gid))
    assert nginx in events["SuccessfulHitImageCache"]   # the pod still starts from it
    auto = events["ImageCacheAutoCreated"].split("Image cache ")[1].split()[0]
    emulator.clock.advance(900)
    cache = await get_cache(eci_call, auto)
    assert cache.images == ["nginx:1.7.9", "redis:7"] and cache.image_cache_size == 30
    assert cache.image_cache_name == f"auto-create-for-{gid}"


async def test_auto_created_cache_is_deleted_when_unused(emulator: Emulator,
                                                         eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req("ga", auto_match_image_cache=True,
                                            containers=[ctr(image="redis:7")]))
    auto = _reasons(await describe(eci_call, gid))["ImageCacheAutoCreated"].split(
        "Image cache ")[1].split()[0]
    emulator.clock.advance(7 * DAY - 60)
    assert (await get_cache(eci_call, auto)).status == "Ready"
    emulator.clock.advance(120)   # 7 days after creation, never used
    resp = await eci_call("describe_image_caches", m.DescribeImageCachesRequest(
        region_id=R, image_cache_id=auto))
    assert resp.body.image_caches == []


async def test_pull_events_use_go_durations(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req("ga", containers=[ctr(image="spark")]))
    emulator.clock.advance(300)
    pulled = _reasons(await describe(eci_call, gid))["Pulled"]
    # 527.8 MB at the Flink bandwidth (386.26 MB in 47 s): 64.22 s.
    assert pulled == ('Successfully pulled image "spark" in 1m4.223s (1m4.223s including '
                      'waiting)')


async def test_ended_groups_are_forgotten_after_an_hour_beyond_the_last_100(
        emulator: Emulator, eci_call: EciCaller) -> None:
    emulator.state.model = EciModel(terminal_keep_count=2)
    ids = []
    for i in range(4):
        ids.append(await create(eci_call, create_req(
            f"job{i}", restart_policy="Never", containers=[ctr(command=["true"])])))
        emulator.clock.advance(60)
    running = await create(eci_call, create_req("server", containers=[ctr()]))
    emulator.clock.advance(3000)   # every job ended less than an hour ago: all kept
    assert (await describe(eci_call, ids[0])).status == "Succeeded"
    emulator.clock.advance(1200)
    resp = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_ids=json.dumps([*ids, running])))
    kept = {g.container_group_id: g.status for g in resp.body.container_groups}
    assert kept == {ids[2]: "Succeeded", ids[3]: "Succeeded", running: "Running"}


async def test_throttling_code_model() -> None:
    async with Emulator(clock=ManualClock(), rate_limits={"DescribeContainerGroups": 1},
                        model={"throttle_code": "Throttling"}) as emu:
        call = EciCaller(emu, "async")
        req = m.DescribeContainerGroupsRequest(region_id=R)
        await call("describe_container_groups", req)
        with pytest.raises(ClientException) as e:
            await call("describe_container_groups", req)
        assert e.value.code == "Throttling"
