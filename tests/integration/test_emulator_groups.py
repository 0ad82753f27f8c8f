"""Container groups through the official SDK (sync and async clients) over HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.fixtures.emulator import EciCaller
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration
R = "cn-hangzhou"
FLINK = "flink:1.13"


def create_req(name: str = "g1", *, containers: list[m.CreateContainerGroupRequestContainer]
               | None = None, **kw: Any) -> m.CreateContainerGroupRequest:
    fields: dict[str, Any] = {
        "region_id": R, "container_group_name": name, "security_group_id": "sg-1",
        "v_switch_id": "vsw-1",
        "container": containers if containers is not None else [
            m.CreateContainerGroupRequestContainer(name="main", image=FLINK, cpu=1.0,
                                                   memory=2.0)],
    }
    fields.update(kw)
    return m.CreateContainerGroupRequest(**fields)


def ctr(name: str = "main", image: str | None = "busybox", command: list[str] | None = None,
        **kw: Any) -> m.CreateContainerGroupRequestContainer:
    return m.CreateContainerGroupRequestContainer(name=name, image=image, command=command, **kw)


def config_files(*sizes: int, text: str | None = None) -> m.CreateContainerGroupRequestVolume:
    files = [m.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
        path=f"f{i}", content=text or base64.b64encode(b"x" * size).decode())
        for i, size in enumerate(sizes)]
    return m.CreateContainerGroupRequestVolume(
        name="cfg", type="ConfigFileVolume",
        config_file_volume=m.CreateContainerGroupRequestVolumeConfigFileVolume(
            config_file_to_path=files))


async def create(call: EciCaller, req: m.CreateContainerGroupRequest) -> str:
    resp = await call("create_container_group", req)
    gid: str = resp.body.container_group_id
    assert gid.startswith("eci-")
    return gid


async def describe(call: EciCaller, gid: str) -> Any:
    resp = await call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_ids=json.dumps([gid])))
    groups = resp.body.container_groups
    assert len(groups) == 1
    return groups[0]


async def test_create_describe_delete(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(
        "web", tag=[m.CreateContainerGroupRequestTag(key="node", value="vk")],
        volume=[m.CreateContainerGroupRequestVolume(name="data", type="EmptyDirVolume")],
        containers=[ctr(image="nginx:1.7.9", port=[m.CreateContainerGroupRequestContainerPort(
            port=80, protocol="TCP")], volume_mount=[
            m.CreateContainerGroupRequestContainerVolumeMount(name="data", mount_path="/d")])]))
    g = await describe(eci_call, gid)
    assert (g.container_group_name, g.status, g.region_id) == ("web", "Scheduling", R)
    assert (g.cpu, g.memory) == (2.0, 4.0)  # no sizes given: ECI's default spec
    assert g.tags[0].key == "node" and g.tags[0].value == "vk"
    assert g.containers[0].ports[0].port == 80
    assert g.containers[0].volume_mounts[0].mount_path == "/d"
    assert g.volumes[0].type == "EmptyDirVolume"
    assert g.intranet_ip.startswith("192.168.")
    await eci_call("delete_container_group", m.DeleteContainerGroupRequest(
        region_id=R, container_group_id=gid))
    resp = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_ids=json.dumps([gid])))
    assert resp.body.container_groups == []
    with pytest.raises(ClientException) as e:
        await eci_call("delete_container_group", m.DeleteContainerGroupRequest(
            region_id=R, container_group_id=gid))
    assert e.value.code.endswith("NotFound")


async def test_flink_without_cache_takes_about_50s(emulator: Emulator,
                                                   eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req())
    emulator.clock.advance(1)
    assert (await describe(eci_call, gid)).status == "Scheduling"
    emulator.clock.advance(47)  # t = 48
    g = await describe(eci_call, gid)
    assert g.status == "Pending"
    assert g.containers[0].current_state.state == "Waiting"
    emulator.clock.advance(3)  # t = 51
    g = await describe(eci_call, gid)
    assert g.status == "Running"
    started = next(e for e in g.events if e.reason == "Started")
    pulled = next(e for e in g.events if e.reason == "Pulled")
    assert "Successfully pulled image" in pulled.message
    created = g.creation_time
    assert (_ts(started.first_timestamp) - _ts(created)) == pytest.approx(50, abs=1)


def _ts(value: str) -> float:
    import calendar
    import time

    return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))


async def test_describe_filters_and_pages(emulator: Emulator, eci_call: EciCaller) -> None:
    ids = []
    for i in range(25):
        tag = m.CreateContainerGroupRequestTag(key="node", value="a" if i % 2 else "b")
        ids.append(await create(eci_call, create_req(f"g{i}", tag=[tag])))
    seen: list[str] = []
    token = None
    while True:
        resp = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
            region_id=R, limit=10, next_token=token,
            tag=[m.DescribeContainerGroupsRequestTag(key="node", value="a")]))
        seen += [g.container_group_id for g in resp.body.container_groups]
        assert resp.body.total_count == 12
        token = resp.body.next_token
        if not token:
            break
    assert seen == ids[1::2]
    by_name = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_name="g3"))
    assert [g.container_group_id for g in by_name.body.container_groups] == [ids[3]]
    emulator.clock.advance(60)
    running = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, status="Running", limit=20))
    assert running.body.total_count == 25
    no_events = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_ids=json.dumps(ids[:2]), with_event=False))
    assert all(not g.events for g in no_events.body.container_groups)
    with pytest.raises(ClientException) as e:
        await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
            region_id=R, container_group_ids=json.dumps(ids[:21])))
    assert e.value.code == "InvalidParameter" and "ContainerGroupIds" in e.value.message


async def test_idempotent_client_token(emulator: Emulator, eci_call: EciCaller) -> None:
    first = await create(eci_call, create_req(client_token="uid-1"))
    again = await create(eci_call, create_req(client_token="uid-1"))
    assert again == first
    assert len(emulator.state.groups) == 1
    with pytest.raises(ClientException) as e:
        await create(eci_call, create_req("other-name", client_token="uid-1"))
    assert e.value.code == "IdempotentParameterMismatch"
    other = await create(eci_call, create_req(client_token="uid-2"))
    assert other != first
    assert [r["ClientToken"] for r in emulator.recorded("CreateContainerGroup")] == [
        "uid-1", "uid-1", "uid-1", "uid-2"]


@pytest.mark.parametrize(("change", "code", "names"), [
    ({"container_group_name": None}, "MissingParameter", "ContainerGroupName"),
    ({"container_group_name": "Bad_Name"}, "InvalidParameter", "ContainerGroupName"),
    ({"security_group_id": None}, "MissingParameter", "SecurityGroupId"),
    ({"region_id": None}, "MissingParameter", "RegionId"),
    ({"region_id": "cn-beijing"}, "InvalidRegionId", "cn-beijing"),
    ({"cpu": 3.0, "memory": 5.0}, "InvalidParameter.CpuMemory", "Cpu"),
    ({"restart_policy": "Sometimes"}, "InvalidParameter", "RestartPolicy"),
    # ECI has no Kubernetes policy names: the node must translate ClusterFirst.
    ({"dns_policy": "ClusterFirst"}, "InvalidParameter", "DnsPolicy"),
    ({"dns_policy": "ClusterFirstWithHostNet"}, "InvalidParameter", "DnsPolicy"),
    ({"container": []}, "MissingParameter", "Container.1.Name"),
    ({"container": [ctr(f"c{i}") for i in range(21)]}, "InvalidParameter", "Container"),
    ({"container": [ctr(image="Not A Valid//Image")]}, "InvalidParameter", "Container.1.Image"),
    ({"container": [ctr(image=None)]}, "MissingParameter", "Container.1.Image"),
    ({"container": [ctr(cpu=64.0, memory=600.0)]}, "InvalidParameter.CpuMemory", "largest"),
    ({"tag": [m.CreateContainerGroupRequestTag(key=f"k{i}", value="v") for i in range(21)]},
     "InvalidParameter", "Tag"),
    ({"volume": [m.CreateContainerGroupRequestVolume(name=f"v{i}", type="EmptyDirVolume")
                 for i in range(21)]}, "InvalidParameter", "Volume"),
    ({"container": [ctr(volume_mount=[m.CreateContainerGroupRequestContainerVolumeMount(
        name="nope", mount_path="/x")])]}, "InvalidParameter", "Container.1.VolumeMount.1.Name"),
    ({"image_snapshot_id": "imc-doesnotexist"}, "InvalidImageSnapshotId.NotFound",
     "imc-doesnotexist"),
    # ECI's documented ConfigFile limits: 32 KB a file, 60 KB a volume.
    ({"volume": [config_files(33_000)]}, "InvalidParameter",
     "Volume.1.ConfigFileVolume.ConfigFileToPath.1.Content"),
    ({"volume": [config_files(31_000, 31_000)]}, "InvalidParameter",
     "Volume.1.ConfigFileVolume.ConfigFileToPath"),
    ({"volume": [config_files(0, text="not base64!")]}, "InvalidParameter", "Content"),
])
async def test_validation_errors(emulator: Emulator, eci_call: EciCaller, change: dict[str, Any],
                                 code: str, names: str) -> None:
    req = create_req()
    for key, value in change.items():
        setattr(req, key, value)
    with pytest.raises(ClientException) as e:
        await eci_call("create_container_group", req)
    assert e.value.code == code
    assert names in e.value.message
    assert e.value.status_code in (400, 404)
    assert not emulator.state.groups


async def test_config_files_within_ecis_limits_are_accepted(emulator: Emulator,
                                                             eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(volume=[config_files(32 * 1024, 28 * 1024)]))
    assert gid in emulator.state.groups


async def test_container_spec_rounds_up(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(containers=[ctr("a", cpu=0.5, memory=1.0),
                                                        ctr("b", cpu=1.0, memory=1.5)]))
    g = await describe(eci_call, gid)
    assert (g.cpu, g.memory) == (2.0, 4.0)


async def test_job_succeeds_and_logs(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(restart_policy="Never", containers=[
        ctr(command=["sh", "-c", "echo one; sleep 30; echo two; exit 0"])]))
    emulator.clock.advance(10)
    g = await describe(eci_call, gid)
    assert g.status == "Running"
    log = await eci_call("describe_container_log", m.DescribeContainerLogRequest(
        region_id=R, container_group_id=gid, container_name="main"))
    assert log.body.content == "one\n"
    emulator.clock.advance(60)
    g = await describe(eci_call, gid)
    assert g.status == "Succeeded" and g.succeeded_time
    state = g.containers[0].current_state
    assert (state.state, state.exit_code, state.reason) == ("Terminated", 0, "Completed")
    log = await eci_call("describe_container_log", m.DescribeContainerLogRequest(
        region_id=R, container_group_id=gid, container_name="main", tail=1, timestamps=True))
    assert log.body.content.endswith("Z two\n")
    log = await eci_call("describe_container_log", m.DescribeContainerLogRequest(
        region_id=R, container_group_id=gid, container_name="main", limit_bytes=3))
    assert log.body.content == "one"


async def test_crash_with_never_fails_the_group(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(restart_policy="Never", containers=[
        ctr(command=["sh", "-c", "exit 3"])]))
    emulator.clock.advance(30)
    g = await describe(eci_call, gid)
    assert g.status == "Failed" and g.failed_time
    assert (g.containers[0].current_state.exit_code, g.containers[0].current_state.reason) == (
        3, "Error")


async def test_crash_loop_with_always(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(containers=[
        ctr(command=["sh", "-c", "echo boom; exit 1"])]))
    emulator.clock.advance(10)   # started at ~5 s, crashed at once: back-off 10 s
    g = await describe(eci_call, gid)
    c = g.containers[0]
    assert g.status == "Running"
    assert (c.current_state.state, c.current_state.reason) == ("Waiting", "CrashLoopBackOff")
    assert c.previous_state.state == "Terminated" and c.previous_state.exit_code == 1
    assert c.restart_count == 1
    emulator.clock.advance(600)
    c = (await describe(eci_call, gid)).containers[0]
    assert c.restart_count >= 5
    backoff = [e for e in (await describe(eci_call, gid)).events if e.reason == "BackOff"]
    assert backoff and backoff[0].type == "Warning" and backoff[0].count >= 5
    prev = await eci_call("describe_container_log", m.DescribeContainerLogRequest(
        region_id=R, container_group_id=gid, container_name="main", last_time=True))
    assert prev.body.content == "boom\n"


async def test_init_container_runs_first(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(
        containers=[ctr()],
        init_container=[m.CreateContainerGroupRequestInitContainer(
            name="init", image="busybox", command=["sleep", "20"])]))
    emulator.clock.advance(10)
    g = await describe(eci_call, gid)
    assert g.status == "Pending"
    assert g.init_containers[0].current_state.state == "Running"
    assert g.containers[0].current_state.reason == "PodInitializing"
    emulator.clock.advance(30)
    g = await describe(eci_call, gid)
    assert g.status == "Running"
    assert g.init_containers[0].current_state.state == "Terminated"


async def test_events_exec_metrics_regions(emulator: Emulator, eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(containers=[ctr(cpu=1.0, memory=2.0)]))
    with pytest.raises(ClientException) as e:
        await eci_call("exec_container_command", m.ExecContainerCommandRequest(
            region_id=R, container_group_id=gid, container_name="main",
            command='["echo","hi"]', sync=True))
    assert e.value.code == "IncorrectStatus"
    emulator.clock.advance(30)
    ev = await eci_call("describe_container_group_events", m.DescribeContainerGroupEventsRequest(
        region_id=R, container_group_ids=json.dumps([gid])))
    reasons = [x.reason for x in ev.body.data[0].events]
    assert reasons[:2] == ["Scheduled", "Pulling"] and "Started" in reasons
    out = await eci_call("exec_container_command", m.ExecContainerCommandRequest(
        region_id=R, container_group_id=gid, container_name="main",
        command='["sh","-c","echo hello world"]', sync=True))
    assert out.body.sync_response == "hello world\n"
    ws = await eci_call("exec_container_command", m.ExecContainerCommandRequest(
        region_id=R, container_group_id=gid, container_name="main", command='["sh"]', tty=True))
    assert ws.body.web_socket_uri.startswith("ws://")
    multi = await eci_call("describe_multi_container_group_metric",
                           m.DescribeMultiContainerGroupMetricRequest(
                               region_id=R, container_group_ids=json.dumps([gid])))
    rec = multi.body.monitor_datas[0].records[0]
    assert rec.containers[0].name == "main" and rec.cpu.usage_nano_cores > 0
    assert rec.memory.working_set > 0
    one = await eci_call("describe_container_group_metric", m.DescribeContainerGroupMetricRequest(
        region_id=R, container_group_id=gid))
    assert one.body.container_group_id == gid and one.body.records
    regions = await eci_call("describe_regions", m.DescribeRegionsRequest())
    assert regions.body.regions[0].region_id == R and regions.body.regions[0].zones
    with pytest.raises(ClientException) as e:
        await eci_call("describe_container_log", m.DescribeContainerLogRequest(
            region_id=R, container_group_id=gid, container_name="nope"))
    assert "nope" in e.value.message


async def test_out_of_stock(emulator: Emulator, eci_call: EciCaller) -> None:
    emulator.faults.set_out_of_stock()
    with pytest.raises(ClientException) as e:
        await create(eci_call, create_req())
    assert e.value.code == "RecommendEmpty.InstanceTypeNoStock"
    emulator.faults.set_out_of_stock(False)
    await create(eci_call, create_req())


async def _status_of(call: EciCaller, gid: str) -> str | None:
    resp = await call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_ids=json.dumps([gid])))
    groups = resp.body.container_groups
    return groups[0].status if groups else None


async def _delete(call: EciCaller, gid: str) -> None:
    await call("delete_container_group", m.DeleteContainerGroupRequest(
        region_id=R, container_group_id=gid))


async def test_delete_honours_grace_period(emulator: Emulator, eci_call: EciCaller) -> None:
    # A server that never ends by itself: it is stopped when the grace period (20 s) ends.
    server = await create(eci_call, create_req(
        "srv", containers=[ctr(command=["sleep", "infinity"])],
        termination_grace_period_seconds=20))
    # A job that ends by itself a few seconds after the delete: gone then, not after 60 s.
    job = await create(eci_call, create_req(
        "job", containers=[ctr(command=["sleep", "100"])], restart_policy="Never",
        termination_grace_period_seconds=60))
    emulator.clock.advance(60)
    assert await _status_of(eci_call, server) == "Running"
    assert await _status_of(eci_call, job) == "Running"
    start = emulator.state.groups[job].containers[0].start
    assert start is not None
    emulator.clock.advance(start + 97 - emulator.clock.now())   # the job has 3 s left
    await _delete(eci_call, server)
    await _delete(eci_call, job)
    g = await describe(eci_call, server)
    assert g.status == "Terminating"
    assert g.containers[0].current_state.state == "Running"   # still running meanwhile
    assert any(e.reason == "Killing" for e in g.events)
    resp = await eci_call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, status="Terminating"))
    assert {x.container_group_id for x in resp.body.container_groups} == {server, job}
    await _delete(eci_call, server)   # a repeated delete of a Terminating group is accepted
    emulator.clock.advance(2.9)
    assert await _status_of(eci_call, job) == "Terminating"
    emulator.clock.advance(0.2)
    assert await _status_of(eci_call, job) is None    # its program ended: gone
    assert await _status_of(eci_call, server) == "Terminating"
    emulator.clock.advance(16.8)
    assert await _status_of(eci_call, server) == "Terminating"
    emulator.clock.advance(0.2)
    assert await _status_of(eci_call, server) is None   # grace period over: gone
    assert not emulator.state.groups
    with pytest.raises(ClientException) as e:
        await _delete(eci_call, server)
    assert e.value.code.endswith("NotFound")


async def test_delete_with_zero_grace_or_finished_group_is_at_once(
        emulator: Emulator, eci_call: EciCaller) -> None:
    now = await create(eci_call, create_req(
        "now", containers=[ctr(command=["sleep", "infinity"])],
        termination_grace_period_seconds=0))
    done = await create(eci_call, create_req(
        "done", containers=[ctr(command=["sleep", "1"])], restart_policy="Never"))
    emulator.clock.advance(10)
    assert await _status_of(eci_call, done) == "Succeeded"
    await _delete(eci_call, now)
    await _delete(eci_call, done)
    assert await _status_of(eci_call, now) is None
    assert await _status_of(eci_call, done) is None


async def test_usage_control_sets_cpu_load_and_keeps_the_counter_monotonic(
        emulator: Emulator, eci_call: EciCaller) -> None:
    import aiohttp

    gid = await create(eci_call, create_req(containers=[ctr(cpu=2.0, memory=4.0)]))
    other = await create(eci_call, create_req("g2", containers=[ctr(cpu=1.0, memory=2.0)]))
    emulator.clock.advance(30)

    async def cpu(group: str) -> Any:
        multi = await eci_call("describe_multi_container_group_metric",
                               m.DescribeMultiContainerGroupMetricRequest(
                                   region_id=R, container_group_ids=json.dumps([group])))
        return multi.body.monitor_datas[0].records[0].cpu

    before = await cpu(gid)
    assert before.usage_nano_cores == 200_000_000 and before.load == 10   # 10% of 2 cores
    emulator.clock.advance(10)
    at_default = (await cpu(gid)).usage_core_nano_seconds
    assert at_default - before.usage_core_nano_seconds == 10 * 200_000_000
    base = f"http://{emulator.endpoint}/__emulator/usage"
    async with aiohttp.ClientSession(headers=emulator.control_headers) as http:
        async with http.post(base, json={"cpu": 0.9, "groups": [gid]}) as resp:
            assert resp.status == 200 and (await resp.json())["groups"] == [gid]
        async with http.post(base, json={"cpu": 1.5}) as resp:
            assert resp.status == 400 and "between 0 and 1" in (await resp.json())["error"]
        async with http.post(base, json={"cpu": 0.5, "groups": ["eci-nope"]}) as resp:
            assert resp.status == 400 and "eci-nope" in (await resp.json())["error"]
    emulator.clock.advance(10)
    busy = await cpu(gid)
    assert busy.usage_nano_cores == 1_800_000_000 and busy.load == 90
    # The counter integrates the load: 10 s at 1.8 cores on top, never a jump back.
    assert busy.usage_core_nano_seconds - at_default == 10 * 1_800_000_000
    assert (await cpu(other)).usage_nano_cores == 100_000_000   # untouched
    assert emulator.set_cpu_load(0.0) == sorted([gid, other])
    emulator.clock.advance(5)
    idle = await cpu(gid)
    assert idle.usage_nano_cores == 0
    assert idle.usage_core_nano_seconds == busy.usage_core_nano_seconds
