"""The emulator's real network for groups (``group_network=True``) and containers that run for
real (``image_programs``), through the official SDK. Needs root and iproute2."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m

from tests.fixtures.emulator import EciCaller
from vk_eci.emulator import Emulator
from vk_eci.emulator.groupnet import netns_list

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/sbin/ip"),
                       reason="needs root and iproute2"),
]
R = "cn-hangzhou"
PYTHON = shutil.which("python3") or "/usr/bin/python3"
SERVE = ["python3", "-m", "http.server", "8080"]


@pytest.fixture
def live(emulator_live: Emulator) -> Emulator:
    return emulator_live


def container(command: list[str], image: str = "python:3", **kw: Any) -> Any:
    return m.CreateContainerGroupRequestContainer(name="main", image=image, command=command,
                                                  cpu=1.0, memory=2.0, **kw)


async def create(call: EciCaller, name: str, *containers: Any, **kw: Any) -> str:
    resp = await call("create_container_group", m.CreateContainerGroupRequest(
        region_id=R, container_group_name=name, security_group_id="sg-1", v_switch_id="vsw-1",
        container=list(containers), **kw))
    gid: str = resp.body.container_group_id
    return gid


async def describe(call: EciCaller, gid: str) -> Any:
    resp = await call("describe_container_groups", m.DescribeContainerGroupsRequest(
        region_id=R, container_group_ids=json.dumps([gid])))
    groups = resp.body.container_groups
    return groups[0] if groups else None


async def until(check: Any, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        try:
            value = await check()
            if value:
                return value
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


def bridge_left(bridge: str) -> bool:
    """Whether the bridge, or its policy rule, is still on the host."""
    shown = subprocess.run(["ip", "link", "show", "dev", bridge], capture_output=True)
    rules = subprocess.run(["ip", "rule"], capture_output=True, text=True).stdout
    return shown.returncode == 0 or f"iif {bridge}" in rules


def fetch(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=3) as resp:
        return str(resp.read().decode())


async def logs(call: EciCaller, gid: str) -> str:
    resp = await call("describe_container_log", m.DescribeContainerLogRequest(
        region_id=R, container_group_id=gid, container_name="main"))
    return str(resp.body.content)


async def exec_sync(call: EciCaller, gid: str, command: list[str]) -> str:
    resp = await call("exec_container_command", m.ExecContainerCommandRequest(
        region_id=R, container_group_id=gid, container_name="main",
        command=json.dumps(command), sync=True))
    return str(resp.body.sync_response)


def prints(call: EciCaller, gid: str, command: list[str], expected: str) -> Any:
    """A check for `until` that holds once the command prints exactly `expected`: a failed run
    prints its traceback, which is output too and must not end the wait."""
    async def check() -> bool:
        return await exec_sync(call, gid, command) == expected
    return check


async def test_groups_serve_http_to_the_host_and_to_each_other(live: Emulator) -> None:
    call = EciCaller(live, "async")
    a = await create(call, "web-a", container(SERVE))
    b = await create(call, "web-b", container(SERVE))
    ga, gb = await describe(call, a), await describe(call, b)
    net = live.state.live.network if live.state.live else None
    assert net is not None
    assert ga.intranet_ip != gb.intranet_ip
    for g in (ga, gb):
        assert g.intranet_ip.startswith(str(net.subnet.network_address)[:-1])
    page = await until(lambda: asyncio.to_thread(fetch, f"http://{ga.intranet_ip}:8080/"))
    assert "Directory listing" in page
    g = await describe(call, a)
    assert g.status == "Running" and g.containers[0].current_state.state == "Running"
    # From inside b (its namespace, for real) to a.
    script = (f"import urllib.request; print(urllib.request.urlopen("
              f"'http://{ga.intranet_ip}:8080/', timeout=3).status)")
    out = await until(lambda: exec_sync(call, b, ["python3", "-c", script]))
    assert out.strip() == "200"
    # Nothing is routed beyond the machine (the bridge forwards only to node networks).
    probe = ("import errno, socket\ns = socket.socket()\ns.settimeout(3)\n"
             "print(errno.errorcode.get(s.connect_ex(('1.1.1.1', 80)), 'connected'))")
    assert (await exec_sync(call, b, ["python3", "-c", probe])).strip() in (
        "EHOSTUNREACH", "ENETUNREACH")
    # http.server logs each request on stderr: that is the container's log.
    text = await until(lambda: logs(call, a))
    assert '"GET / HTTP/1.1" 200' in text


async def test_exec_reads_a_config_file_at_its_mount_path(live: Emulator) -> None:
    call = EciCaller(live, "async")
    volume = m.CreateContainerGroupRequestVolume(
        name="cfg", type="ConfigFileVolume",
        config_file_volume=m.CreateContainerGroupRequestVolumeConfigFileVolume(
            config_file_to_path=[
                m.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
                    path="app.conf", content=base64.b64encode(b"answer=42\n").decode())]))
    mount = m.CreateContainerGroupRequestContainerVolumeMount(
        name="cfg", mount_path="/etc/vk-eci-test-cfg", read_only=True)
    env = m.CreateContainerGroupRequestContainerEnvironmentVar(key="GREETING", value="hello")
    gid = await create(call, "cfg", container(
        ["python3", "-c", "import os, time; print(os.environ['GREETING'], flush=True); "
         "time.sleep(600)"], volume_mount=[mount], environment_var=[env]), volume=[volume])
    out = await until(lambda: exec_sync(call, gid, ["cat", "/etc/vk-eci-test-cfg/app.conf"]))
    assert out == "answer=42\n"
    assert (await until(lambda: logs(call, gid))) == "hello\n"
    # The mount is the container's alone: the host does not see the file.
    assert not await asyncio.to_thread(os.path.exists, "/etc/vk-eci-test-cfg/app.conf")


async def test_exit_code_and_restart_policy_follow_the_process(live: Emulator) -> None:
    call = EciCaller(live, "async")
    gid = await create(call, "job", container(
        ["python3", "-c", "import sys; print('bye'); sys.exit(3)"]), restart_policy="Never")

    async def failed() -> Any:
        g = await describe(call, gid)
        return g if g.status == "Failed" else None

    g = await until(failed)
    state = g.containers[0].current_state
    assert (state.state, state.exit_code, state.reason) == ("Terminated", 3, "Error")
    assert await logs(call, gid) == "bye\n"


async def test_delete_and_stop_remove_namespaces_and_bridge() -> None:
    async with Emulator(time_scale=0.01, group_network=True,
                        image_programs={"python:*": PYTHON}) as emu:
        call = EciCaller(emu, "async")
        net = emu.state.live.network if emu.state.live else None
        assert net is not None
        a = await create(call, "del-a", container(SERVE))
        b = await create(call, "del-b", container(SERVE))
        assert {net.netns_name(a), net.netns_name(b)} <= set(netns_list())
        await until(lambda: asyncio.to_thread(fetch, f"http://{(emu.state.groups[a]).intranet_ip}"
                                                     ":8080/"))
        await call("delete_container_group", m.DeleteContainerGroupRequest(
            region_id=R, container_group_id=a))

        async def gone() -> bool:
            return await describe(call, a) is None

        await until(gone)
        assert net.netns_name(a) not in netns_list()
        assert net.netns_name(b) in netns_list()
        bridge = net.bridge
    assert net.netns_name(b) not in netns_list()
    assert not await asyncio.to_thread(bridge_left, bridge)


async def test_an_unmapped_image_is_simulated_as_before(live: Emulator) -> None:
    call = EciCaller(live, "async")
    gid = await create(call, "sim", container(["sh", "-c", "echo hi; sleep 3600"],
                                              image="busybox"))

    async def running() -> Any:
        g = await describe(call, gid)
        return g if g.status == "Running" else None

    await until(running)
    assert await until(lambda: logs(call, gid)) == "hi\n"
    assert await exec_sync(call, gid, ["echo", "simulated"]) == "simulated\n"
    # It still has its address and namespace (a real process could reach it), just no process.
    assert live.state.live is not None
    assert live.state.live.network.netns_name(gid) in netns_list()
    assert live.state.groups[gid].containers[0].live is None


async def test_exec_websocket_runs_in_the_container(live: Emulator) -> None:
    import aiohttp

    call = EciCaller(live, "async")
    gid = await create(call, "ws", container(SERVE))
    await until(lambda: exec_sync(call, gid, ["echo", "up"]))   # its process has started
    resp = await call("exec_container_command", m.ExecContainerCommandRequest(
        region_id=R, container_group_id=gid, container_name="main", sync=False, stdin=True,
        command=json.dumps(["sh", "-c", "read line; echo got $line; ip -br addr show eth0 >&2;"
                                        " exit 3"])))
    frames: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as http, http.ws_connect(
            resp.body.web_socket_uri, protocols=("v5.channel.k8s.io",)) as ws:
        await ws.send_bytes(b"\x00hello\n")
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                frames[msg.data[0]] = frames.get(msg.data[0], b"") + msg.data[1:]
    assert frames[1] == b"got hello\n"
    assert live.state.groups[gid].intranet_ip in frames[2].decode()   # its own eth0
    status = json.loads(frames[3])
    assert status["details"]["causes"][0]["message"] == "3"


async def test_a_deleted_group_is_gone_once_its_processes_have_exited(live: Emulator) -> None:
    call = EciCaller(live, "async")
    gid = await create(call, "quick", container(SERVE),
                       termination_grace_period_seconds=3600)
    await until(lambda: asyncio.to_thread(
        fetch, f"http://{live.state.groups[gid].intranet_ip}:8080/"))
    await call("delete_container_group", m.DeleteContainerGroupRequest(
        region_id=R, container_group_id=gid))

    async def gone() -> bool:
        return await describe(call, gid) is None

    await until(gone, within=10)   # not after the hour (36 s scaled) of its grace period


async def test_a_group_that_takes_a_freed_address_is_reached_at_once(live: Emulator) -> None:
    """A group reached the old holder of an address (its ARP entry holds that one's MAC); the
    next group gets the address and is reached from the first fetch, although it has sent
    nothing yet that could have told the others: it has the old holder's MAC too."""
    call = EciCaller(live, "async")
    client = await create(call, "client", container(["python3", "-c",
                                                     "import time; time.sleep(600)"]))
    old = await create(call, "old", container(SERVE))
    address = live.state.groups[old].intranet_ip
    get = ("import sys, urllib.request as u\n"
           "print(u.urlopen(sys.argv[1], timeout=3).status)")
    url = f"http://{address}:8080/"
    # The old holder's server may not listen yet: wait for its answer, which also fills the
    # client's ARP entry with the old holder's MAC.
    await until(prints(call, client, ["python3", "-c", get, url], "200\n"))
    await call("delete_container_group", m.DeleteContainerGroupRequest(
        region_id=R, container_group_id=old))

    async def gone() -> bool:
        return await describe(call, old) is None

    await until(gone)
    new = await create(call, "new", container(SERVE))
    assert live.state.groups[new].intranet_ip == address   # the lowest free one: the same
    listening = ("import socket; s = socket.create_connection(('127.0.0.1', 8080), 1); "
                 "print('up')")   # over its loopback: nothing leaves the new group
    await until(prints(call, new, ["python3", "-c", listening], "up\n"))
    started = time.monotonic()
    assert await exec_sync(call, client, ["python3", "-c", get, url]) == "200\n"
    assert time.monotonic() - started < 3
