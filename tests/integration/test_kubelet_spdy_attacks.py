"""Attacks on exec through a real kube-apiserver 1.35, which relays the caller's SPDY bytes to
the node's kubelet API unchanged (docs/SECURITY.md, "Exec streams"): header bombs, a caller who
stops reading an endless output, a stdin flood. Under each the node (``vk-eci run``) grows by
less than 64 MiB at its peak and its event loop never stalls for more than 100 ms; the session
ends and the node keeps serving. Then the idle timeout and maximum length on both exec paths.

``SPDY_ATTACK_NODE_TREE=/path/to/an/older/checkout`` runs the node from that tree (the test's
emulator stays this tree's): how the figures "before" in docs/SECURITY.md were measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.fixtures.node import NodeProcess, eventually, free_port, node_command, node_env
from vk_eci.controlplane.state import ControlPlane
from vk_eci.emulator import Emulator

from .spdy_attack import Cost, Meter, MiB, SpdyCaller, admin_tls

pytestmark = pytest.mark.integration
FLOOD_SECONDS = 5.0


class Node:
    def __init__(self, cp: ControlPlane, process: NodeProcess, kubelet_port: int) -> None:
        self.cp, self.process, self.kubelet_port = cp, process, kubelet_port
        self.pod, self.ns = f"p-{process.name}", "default"

    def meter(self, name: str) -> Meter:
        assert self.process.proc is not None
        return Meter(self.process.proc.pid, f"http://127.0.0.1:{self.process.metrics_port}",
                     name)

    async def caller(self, command: list[str], stdin: bool = False) -> SpdyCaller:
        return await SpdyCaller.open(self.cp.kubeconfig, self.ns, self.pod, command, stdin)

    async def still_serves(self) -> None:
        out = await asyncio.to_thread(self.cp.kubectl, "exec", self.pod, "--", "echo", "alive")
        assert out.stdout == "alive\n"


async def start_node(cp: ControlPlane, emu: Emulator, tmp_path: Path,
                     **flags: str) -> AsyncIterator[Node]:
    name, port, kubelet_port = f"vk-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    env, argv = node_env(), node_command(cp.kubeconfig, emu.endpoint, name, port,
                                         kubelet_port=kubelet_port, **flags)
    if os.environ.get("SPDY_ATTACK_NODE_TREE"):
        env["PYTHONPATH"] = os.environ["SPDY_ATTACK_NODE_TREE"]
        argv.insert(1, "-P")  # not the working directory's vk_eci first
    process = NodeProcess(name=name, argv=argv, env=env, log_path=tmp_path / "node.log",
                          metrics_port=port)
    await process.start()
    node = Node(cp, process, kubelet_port)
    try:
        await asyncio.to_thread(cp.kubectl, "create", "serviceaccount", "default", "-n",
                                "default", check=False)
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": node.pod, "namespace": "default"},
               "spec": {"nodeName": name, "automountServiceAccountToken": False,
                        "containers": [{"name": "main", "image": "busybox:1.36",
                                        "command": ["sleep", "infinity"]}]}}
        await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(pod))

        async def running() -> bool:
            out = await asyncio.to_thread(cp.kubectl, "get", "pod", node.pod, "-o",
                                          "jsonpath={.status.phase}", check=False)
            return out.stdout == "Running"

        await eventually(running, 60, "the pod Running", process)
        yield node
    finally:
        await process.stop()
        await asyncio.to_thread(cp.kubectl, "delete", "pod", node.pod, "--force",
                                "--grace-period=0", check=False)
        await asyncio.to_thread(cp.kubectl, "delete", "node", name, check=False)


@pytest_asyncio.fixture
async def node(legacy_control_plane: ControlPlane, emulator_realtime: Emulator,
               tmp_path: Path) -> AsyncIterator[Node]:
    async for n in start_node(legacy_control_plane, emulator_realtime, tmp_path):
        yield n


@pytest_asyncio.fixture
async def short_node(legacy_control_plane: ControlPlane, emulator_realtime: Emulator,
                     tmp_path: Path) -> AsyncIterator[Node]:
    async for n in start_node(legacy_control_plane, emulator_realtime, tmp_path,
                              kubelet_exec_idle_timeout="2", kubelet_exec_max_duration="5"):
        yield n


async def header_bomb(node: Node, name: str, frames: list[bytes], cost: Cost,
                      caller: SpdyCaller) -> None:
    cost.notes.append(f"({len(frames)} x {len(frames[0]) // 1024} KiB;")
    sent = await caller.send(b"".join(frames), 30)
    # The node answers a bad frame by ending the session; an uncapped one works through
    # the bomb first (or never ends it: the caller opened no stream it wanted).
    ended = await caller.closed_within(15)
    cost.notes.append(f"all sent: {sent}, session ended: {ended})")


async def test_spdy_bombs_through_the_api_server_cost_the_node_little(node: Node) -> None:
    costs: list[Cost] = []

    caller = await node.caller(["sh"], stdin=True)
    bomb = [caller.zero_headers(1, 512 * MiB, count=0xFFFFFFFF)]  # ~512 KB on the wire
    async with node.meter("one ~512 KB SYN_STREAM, 2^32-1 headers") as cost:
        await header_bomb(node, cost.name, bomb, cost, caller)
    costs.append(cost)
    caller.close()

    caller = await node.caller(["sh"], stdin=True)
    bombs = [caller.zero_headers(2 * i + 1, 16 * MiB) for i in range(10)]  # ~16 KiB each
    async with node.meter("ten ~16 KiB SYN_STREAMs, 2M headers each") as cost:
        await header_bomb(node, cost.name, bombs, cost, caller)
    costs.append(cost)
    caller.close()

    # `cat /dev/zero` whose caller stops reading (a Ctrl-Z'd kubectl exec).
    caller = await node.caller(["cat", "/dev/zero"])
    for stream, kind in ((1, "error"), (3, "stdout"), (5, "stderr")):
        await caller.send(caller.stream(stream, kind))
    async with node.meter("cat /dev/zero, caller stops reading") as cost:
        await asyncio.sleep(FLOOD_SECONDS)
    costs.append(cost)
    caller.close()

    # A stdin flood into a command that does not read it.
    caller = await node.caller(["sleep", "infinity"], stdin=True)
    for stream, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")):
        await caller.send(caller.stream(stream, kind))
    chunk, pushed = _data(3, bytes(32 * 1024)), 0
    async with node.meter("stdin flood") as cost:
        end = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < end:
            if not await caller.send(chunk * 8, max(0.01, end - time.monotonic())):
                break
            pushed += len(chunk) * 8
        cost.notes.append(f"({pushed // MiB} MiB taken in {FLOOD_SECONDS:g} s)")
    costs.append(cost)
    caller.close()

    await node.still_serves()
    report = "\n".join(c.line() for c in costs)
    print("\n" + report)
    for c in costs:
        assert c.rss_growth < 64, report
        assert c.loop_lag is not None and c.loop_lag <= 0.1, report


def _data(stream: int, data: bytes) -> bytes:
    from vk_eci.kubelet.spdy_frames import data_frame

    return data_frame(stream, data)


async def _ws_exec(node: Node, command: list[str]) -> tuple[float, str]:
    """Exec straight at the node's kubelet API over WebSocket (as API servers from 1.36 call
    it), reading everything; (seconds until the session ended, its status message)."""
    _, ctx = admin_tls(node.cp.kubeconfig)
    query = "&".join(f"command={c}" for c in command) + "&output=1&error=1"
    url = (f"https://127.0.0.1:{node.kubelet_port}/exec/{node.ns}/{node.pod}/main?{query}")
    started, status = time.monotonic(), ""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url, protocols=("v5.channel.k8s.io",), ssl=ctx) as ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[:1] == b"\x03":
                status = json.loads(msg.data[1:]).get("message", "")
    return time.monotonic() - started, status


async def test_idle_and_endless_exec_sessions_end_on_both_paths(short_node: Node) -> None:
    """--kubelet-exec-idle-timeout 2 and --kubelet-exec-max-duration 5."""
    node = short_node
    # SPDY, through the API server: kubectl shows the node's reason.
    started = time.monotonic()
    out = await asyncio.to_thread(node.cp.kubectl, "exec", node.pod, "--", "sleep", "infinity",
                                  check=False)
    took = time.monotonic() - started
    assert out.returncode != 0 and 2 <= took < 15, (took, out)
    assert "moved no data for 2 s" in out.stderr, out.stderr
    caller = await node.caller(["cat", "/dev/zero"])
    for stream, kind in ((1, "error"), (3, "stdout"), (5, "stderr")):
        await caller.send(caller.stream(stream, kind))
    started = time.monotonic()
    assert await caller.closed_within(20)  # reads all the while: only the length ends it
    assert 5 <= time.monotonic() - started < 15
    caller.close()
    # WebSocket, straight at the kubelet API.
    took, status = await _ws_exec(node, ["sleep", "infinity"])
    assert 2 <= took < 15 and "moved no data for 2 s" in status, (took, status)
    took, status = await _ws_exec(node, ["cat", "/dev/zero"])
    assert 5 <= took < 15 and "maximum length of 5 s" in status, (took, status)
