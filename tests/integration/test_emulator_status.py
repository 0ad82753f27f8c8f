"""``DescribeContainerGroupStatus`` through the official SDK: PodStatus, SinceSecond, paging."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.fixtures.emulator import EciCaller
from tests.integration.test_emulator_groups import R, create, create_req, ctr
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration
TAG = m.DescribeContainerGroupStatusRequestTag(key="node", value="vk")


async def status(call: EciCaller, **kw: Any) -> Any:
    resp = await call("describe_container_group_status",
                      m.DescribeContainerGroupStatusRequest(region_id=R, **kw))
    return resp.body


async def test_pod_status_of_a_running_and_a_finished_group(emulator: Emulator,
                                                            eci_call: EciCaller) -> None:
    tag = [m.CreateContainerGroupRequestTag(key="node", value="vk")]
    web = await create(eci_call, create_req("web", tag=tag, containers=[ctr()]))
    job = await create(eci_call, create_req("job", tag=tag, restart_policy="Never",
                                            containers=[ctr(command=["sh", "-c", "exit 3"])]))
    other = await create(eci_call, create_req("other", containers=[ctr()]))
    body = await status(eci_call, tag=[TAG])
    assert body.total_count == 2 and not body.next_token
    assert {d.container_group_id for d in body.data} == {web, job}
    first = {d.container_group_id: d for d in body.data}[web]
    assert (first.name, first.status, first.pod_status.phase) == ("web", "Scheduling", "Pending")
    assert first.pod_status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    emulator.clock.advance(30)
    by_id = {d.container_group_id: d for d in (await status(
        eci_call, container_group_ids=json.dumps([web, job, other]))).data}
    assert set(by_id) == {web, job, other}
    ps = by_id[web].pod_status
    assert (by_id[web].status, ps.phase, ps.pod_ip, ps.qos_class) == (
        "Running", "Running", ps.pod_ips[0].ip, "Guaranteed")
    c = ps.container_statuses[0]
    assert (c.name, c.ready, c.started, c.restart_count) == ("main", True, True, 0)
    assert c.state.running.started_atstarted_at.endswith("Z")
    conds = {x.type: x.status for x in ps.conditions}
    assert conds == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
                     "Ready": "True"}
    failed = by_id[job]
    term = failed.pod_status.container_statuses[0].state.terminated
    assert (failed.status, failed.pod_status.phase, term.exit_code, term.reason) == (
        "Failed", "Failed", 3, "Error")
    assert term.finished_at and term.started_at


async def test_since_second_returns_only_what_changed(emulator: Emulator,
                                                      eci_call: EciCaller) -> None:
    tag = [m.CreateContainerGroupRequestTag(key="node", value="vk")]
    steady = await create(eci_call, create_req("steady", tag=tag, containers=[ctr()]))
    emulator.clock.advance(100)
    assert (await status(eci_call, tag=[TAG], since_second=5)).data == []
    # A new group (its creation is a change), and nothing else, shows in a short window.
    fresh = await create(eci_call, create_req("fresh", tag=tag, containers=[ctr()]))
    changed = await status(eci_call, tag=[TAG], since_second=5)
    assert [d.container_group_id for d in changed.data] == [fresh]
    emulator.clock.advance(100)
    assert (await status(eci_call, tag=[TAG], since_second=5)).data == []
    # Deleting is a change too (Terminating); the whole listing still has both.
    await eci_call("delete_container_group", m.DeleteContainerGroupRequest(
        region_id=R, container_group_id=steady))
    changed = await status(eci_call, tag=[TAG], since_second=2)
    assert [(d.container_group_id, d.status) for d in changed.data] == [(steady, "Terminating")]
    assert (await status(eci_call, tag=[TAG])).total_count == 2


async def test_since_second_sees_each_transition_of_a_start(emulator: Emulator,
                                                            eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req("flink", tag=[
        m.CreateContainerGroupRequestTag(key="node", value="vk")]))
    seen = []
    for _ in range(60):   # one poll per second with a two-second window (overlapping)
        emulator.clock.advance(1)
        for d in (await status(eci_call, tag=[TAG], since_second=2)).data:
            assert d.container_group_id == gid
            seen.append(d.status)
    phases = list(dict.fromkeys(seen))
    assert phases == ["Scheduling", "Pending", "Running"]


async def test_paging_and_validation(emulator: Emulator, eci_call: EciCaller) -> None:
    tag = [m.CreateContainerGroupRequestTag(key="node", value="vk")]
    ids = [await create(eci_call, create_req(f"g{i}", tag=tag, containers=[ctr()]))
           for i in range(7)]
    got: list[str] = []
    token = None
    while True:
        body = await status(eci_call, tag=[TAG], limit=3, next_token=token)
        assert body.total_count == 7 and len(body.data) <= 3
        got += [d.container_group_id for d in body.data]
        token = body.next_token
        if not token:
            break
    assert got == ids
    for bad, field in (({"container_group_ids": json.dumps(ids * 3)}, "ContainerGroupIds"),
                       ({"limit": 201}, "Limit"), ({"since_second": 0}, "SinceSecond"),
                       ({"container_group_ids": "eci-1"}, "ContainerGroupIds")):
        with pytest.raises(ClientException) as e:
            await status(eci_call, **bad)
        assert e.value.code == "InvalidParameter" and field in e.value.message
    assert (await status(eci_call, zone_id="cn-hangzhou-nowhere")).data == []
    assert (await status(eci_call, v_switch_id="vsw-1")).total_count == 7


async def test_paging_survives_the_list_shrinking_between_pages(emulator: Emulator,
                                                               eci_call: EciCaller) -> None:
    # A client pages through a live account: groups on the first page end before it asks for
    # the next. An offset token then pointed past the end (InvalidParameter) or skipped groups.
    tag = [m.CreateContainerGroupRequestTag(key="node", value="vk")]
    ids = [await create(eci_call, create_req(f"p{i}", tag=tag, containers=[ctr()],
                                             termination_grace_period_seconds=0))
           for i in range(7)]
    first = await status(eci_call, tag=[TAG], limit=3)
    assert [d.container_group_id for d in first.data] == ids[:3] and first.next_token
    for gid in ids[:5]:
        await eci_call("delete_container_group",
                       m.DeleteContainerGroupRequest(region_id=R, container_group_id=gid))
    emulator.clock.advance(5)
    rest = await status(eci_call, tag=[TAG], limit=3, next_token=first.next_token)
    assert [d.container_group_id for d in rest.data] == ids[5:] and not rest.next_token
    with pytest.raises(ClientException) as e:
        await status(eci_call, tag=[TAG], next_token="3")
    assert e.value.code == "InvalidParameter" and "NextToken" in e.value.message


async def test_own_rate_limit(eci_call: EciCaller) -> None:
    async with Emulator(rate_limits={"DescribeContainerGroupStatus": 2}) as emu:
        call = EciCaller(emu, eci_call.mode)
        await status(call)
        await status(call)
        with pytest.raises(ClientException) as e:
            await status(call)
        assert e.value.code == "Throttling.User"
        await call("describe_container_groups", m.DescribeContainerGroupsRequest(region_id=R))


async def test_control_path_gives_exact_transition_times(emulator: Emulator,
                                                         eci_call: EciCaller) -> None:
    import aiohttp

    gid = await create(eci_call, create_req("exact", containers=[ctr()]))
    emulator.clock.advance(30.25)
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://{emulator.endpoint}/__emulator/groups",
                     headers=emulator.control_headers) as resp:
        [group] = (await resp.json())["groups"]
    assert (group["id"], group["name"], group["status"]) == (gid, "exact", "Running")
    g = emulator.state.groups[gid]
    # Floats, not the whole seconds an answer shows: what benchmarks measure lag against.
    assert group["created"] == g.created and group["running"] == g.running_at
    assert group["running"] != int(group["running"]) and group["ended"] is None
