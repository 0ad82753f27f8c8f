"""As an attack: a tenant's ``$(VAR)`` amplification pod must not take the node.

Real control plane, the ECI emulator and ``vk-eci run``. The tenant's 100 KB ConfigMap value is
referenced 5,000 times from 20 KB of env: 500 MB if expanded. The node must refuse it with one
named ``ProviderFailed`` event (never the value), stay up with bounded memory, keep starting
other tenants' pods (one of them with 60 KB of env, past the emulator's old 8 KiB request line),
and come back after a restart without crash-looping on it. The node runs under an address-space
limit so that a node without the bound cannot take the shared machine's memory: it fails here.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.controlplane import scratch_namespace
from tests.fixtures.node import NodeProcess, eventually
from tests.integration.test_node_pods import pod_body

pytestmark = pytest.mark.integration

VALUE = "v" * 100_000
HEADROOM = 768 * 1024 * 1024  # address space the node may add to what it has when started


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in bytes (VmHWM: peak RSS; VmSize: address space)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


async def limit_memory(node: NodeProcess) -> int:
    """Cap the node's address space (RLIMIT_AS) once it runs Python; its pid."""
    assert node.proc is not None
    pid = node.proc.pid

    def cmdline() -> bytes:
        return Path(f"/proc/{pid}/cmdline").read_bytes()

    async def is_python() -> bool:  # ``ip netns exec`` execs the node in place
        return b"vk_eci" in await asyncio.to_thread(cmdline)

    await eventually(is_python, 30, "the node process started", node, every=0.1)
    await asyncio.sleep(1)
    limit = proc_status(pid, "VmSize") + HEADROOM
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
    return pid


@pytest.fixture
def victim_namespace(control_plane: Any, namespace: str) -> Iterator[str]:
    with scratch_namespace(control_plane, f"{namespace}-victim") as name:
        yield name


async def provider_failed(core: client.CoreV1Api, ns: str, name: str) -> list[Any]:
    items = (await core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name}")).items
    return [e for e in items if e.reason == "ProviderFailed"]


async def node_ready(core: client.CoreV1Api, name: str) -> bool:
    node = await core.read_node(name)
    return any(c.type == "Ready" and c.status == "True"
               for c in (node.status.conditions if node.status else None) or [])


async def running(core: client.CoreV1Api, ns: str, name: str) -> bool:
    pod = await core.read_namespaced_pod(name, ns)
    return bool(pod.status and pod.status.phase == "Running")


async def test_an_expansion_bomb_is_refused_by_name_and_the_node_keeps_serving_others(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        victim_namespace: str, emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    pid = await limit_memory(vk_node)
    await core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "big"}, "data": {"A": VALUE}})
    bomb = pod_body("bomb", vk_node.name, ["sleep", "3600"])
    bomb["spec"]["containers"][0]["env"] = [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "big", "key": "A"}}},
        {"name": "B", "value": "$(A)" * 5_000}]
    await eventually(lambda: node_ready(core, vk_node.name), 60, "node Ready", vk_node)
    await asyncio.sleep(2)  # past start-up (imports, first listings): measure the bomb only
    rss_before = proc_status(pid, "VmHWM")
    created = await core.create_namespaced_pod(namespace, bomb)

    async def refused() -> list[Any]:
        return await provider_failed(core, namespace, "bomb")

    [event] = await eventually(refused, 60, "a ProviderFailed event on the bomb pod", vk_node)
    assert "container main env B" in event.message, event.message
    assert "131072" in event.message and "MAX_ARG_STRLEN" in event.message
    assert "vvvvvvvv" not in event.message
    pod = await core.read_namespaced_pod("bomb", namespace)
    assert pod.status.reason == "ProviderFailed" and "container main env B" in pod.status.message
    assert "container main env B" in vk_node.logs()  # and a log line
    grown = proc_status(pid, "VmHWM") - rss_before
    print(f"node peak RSS grew {grown / 2**20:.1f} MiB while refusing the bomb")
    assert grown < 100 * 2**20
    # Never sent to ECI.
    tokens = {r["ClientToken"] for r in emulator_realtime.recorded("CreateContainerGroup")}
    assert created.metadata.uid not in tokens

    # Other tenants' pods still start, including one with 60 KB of env (under every bound).
    other = pod_body("other", vk_node.name, ["sleep", "3600"])
    other["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * 60_000}]
    await core.create_namespaced_pod(victim_namespace, other)
    await eventually(lambda: running(core, victim_namespace, "other"), 60, "other Running",
                     vk_node)
    sent = [r[k.replace(".Key", ".Value")] for r in
            emulator_realtime.recorded("CreateContainerGroup") for k in r
            if k.startswith("Container.1.EnvironmentVar.") and r[k] == "BLOB"]
    assert sent == ["x" * 60_000]

    # Refused once: no retry storm, the node is the same process with bounded memory.
    await asyncio.sleep(3)
    [event] = await provider_failed(core, namespace, "bomb")
    assert (event.count or 1) == 1
    assert vk_node.logs().count("giving up on pod " + f"{namespace}/bomb") == 1
    assert vk_node.running and vk_node.starts == 1
    print(f"node peak RSS {proc_status(pid, 'VmHWM') / 2**20:.1f} MiB after the other pod")

    # Start-up reconciliation meets the bomb again: refused again, no crash loop.
    await vk_node.kill()
    await vk_node.start()
    pid = await limit_memory(vk_node)
    await core.create_namespaced_pod(victim_namespace, pod_body("after", vk_node.name,
                                                                ["sleep", "3600"]))
    await eventually(lambda: running(core, victim_namespace, "after"), 60,
                     "a pod created after the restart Running", vk_node)
    await asyncio.sleep(3)
    assert vk_node.running and vk_node.proc is not None and vk_node.proc.pid == pid
    assert await running(core, victim_namespace, "other")
    pod = await core.read_namespaced_pod("bomb", namespace)
    assert pod.status.reason == "ProviderFailed"
    assert created.metadata.uid not in {
        r["ClientToken"] for r in emulator_realtime.recorded("CreateContainerGroup")}
