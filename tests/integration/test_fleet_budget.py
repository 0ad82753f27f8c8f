"""One ECI account budget, shared (docs/RELIABILITY.md "One account budget"): two virtual nodes
of one account in one cluster, against one emulator whose CreateContainerGroup limit is lowered
to 120 a minute, burst more pods than that at once: the emulator answers no Throttling.User and
every pod runs. Then one node is SIGKILLed: its share returns to the other within one lease
duration (its member Lease is judged expired on the survivor's clock).

Shares are read from the API server (the member Leases' annotations), throttling from the
emulator's own count of the answers it refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from tests.fixtures.emulator import emulator_host
from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_node_pods import pod_body
from tests.integration.test_node_standby import Replicas
from vk_eci.cluster.fleet.member import SHARE_ANNOTATION, VIEW_ANNOTATION, FleetTiming
from vk_eci.emulator import Emulator
from vk_eci.emulator.ratelimit import DEFAULT_LIMITS

pytestmark = pytest.mark.integration

CREATES_PER_MINUTE = 120
PODS_PER_NODE = 75  # 150 creates in all: more than the account's minute, on both at once


@pytest_asyncio.fixture
async def emulator_realtime(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """The fixture of tests/fixtures/emulator.py with the account's create limit lowered."""
    limits = {**DEFAULT_LIMITS, "CreateContainerGroup": CREATES_PER_MINUTE}
    async with Emulator(access_key_id="AK", access_key_secret="SK", region="cn-hangzhou",
                        time_scale=0.01, host=emulator_host(request), rate_limits=limits,
                        other_limit=6000) as emu:
        yield emu


async def shares(kube_api: client.ApiClient, namespace: str) -> dict[str, tuple[float, str]]:
    """Node name -> (share, view) as each member Lease publishes them."""
    leases = await client.CoordinationV1Api(kube_api).list_namespaced_lease(namespace)
    out = {}
    for lease in leases.items:
        notes = lease.metadata.annotations or {}
        if SHARE_ANNOTATION in notes:
            out[notes["vk-eci.io/fleet-node"]] = (float(notes[SHARE_ANNOTATION]),
                                                  notes.get(VIEW_ANNOTATION, ""))
    return out


async def test_two_nodes_share_one_account_budget(
        node_factory: NodeFactory, emulator_realtime: Emulator, kube_api: client.ApiClient,
        namespace: str) -> None:
    emu = emulator_realtime
    # The account's limits, as its owner configures every node of it.
    flags: dict[str, str | bool] = {
        "eci_account_lease_namespace": namespace, "pod_workers": "32",
        "eci_rate_limits": f"CreateContainerGroup={CREATES_PER_MINUTE}"}
    a = await node_factory(**flags)
    b = await node_factory(**flags)

    async def both_halves() -> bool:
        seen = await shares(kube_api, namespace)
        return sorted(s for s, _ in seen.values()) == [0.5, 0.5]

    await eventually(both_halves, 60, "both members at half the account's budget", a)

    core = client.CoreV1Api(kube_api)
    tolerate = [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]
    names = []
    for node in (a, b):
        for i in range(PODS_PER_NODE):
            name = f"{node.name}-{i}"
            names.append(name)
            await core.create_namespaced_pod(namespace, pod_body(
                name, node.name, tolerations=tolerate))

    async def all_running() -> Any:
        pods = (await core.list_namespaced_pod(namespace)).items
        running = sum(1 for p in pods if p.status and p.status.phase == "Running")
        return running == len(names) or None

    started = time.monotonic()
    await eventually(all_running, 240, f"all {len(names)} pods Running", a, every=2.0)
    took = time.monotonic() - started
    creates = len(emu.recorded("CreateContainerGroup"))
    print(f"{len(names)} pods Running in {took:.0f}s, {creates} CreateContainerGroup requests, "
          f"{emu.throttled('CreateContainerGroup')} throttled")
    assert emu.throttled("CreateContainerGroup") == 0
    assert sum(emu._service.limiter.refused.values()) == 0, emu._service.limiter.refused
    # More creates than one minute's limit really were sent: the budget was the bound.
    assert creates >= len(names) > CREATES_PER_MINUTE

    # A member dies without a word: the survivor takes the whole budget within one lease
    # duration of the death (plus the survivor's check tick and a little scheduling slack).
    await b.kill()
    killed = time.monotonic()

    async def survivor_alone() -> bool:
        seen = await shares(kube_api, namespace)
        return seen.get(a.name, (0.0, ""))[0] == 1.0

    await eventually(survivor_alone, 30, "the survivor at the whole budget", a, every=0.25)
    returned = time.monotonic() - killed
    print(f"share returned {returned:.1f}s after the SIGKILL")
    assert returned <= FleetTiming().lease_duration + 2.0
    await asyncio.sleep(0)
    assert sum(emu._service.limiter.refused.values()) == 0


@pytest_asyncio.fixture
async def pair(control_plane: Any, emulator_realtime: Emulator, tmp_path: Path,
               namespace: str) -> AsyncIterator[Replicas]:
    """One node's two replicas (a leader and its hot standby), stopped after the test."""
    r = Replicas(control_plane, emulator_realtime, tmp_path, namespace)
    yield r
    await r.stop()


async def test_a_node_with_a_hot_standby_spends_nearly_the_whole_budget(
        pair: Replicas, kube_api: client.ApiClient, namespace: str) -> None:
    """A standby counts at a small weight: its leader is not halved (docs/RELIABILITY.md "One
    account budget"). When the leader dies the standby takes over and, once the dead member's
    Lease has expired, spends the whole budget."""
    first = await pair.start("r0", eci_account_lease_namespace=namespace)
    await pair.start("r1", eci_account_lease_namespace=namespace)
    coord = client.CoordinationV1Api(kube_api)

    async def by_identity() -> dict[str, float]:
        leases = await coord.list_namespaced_lease(namespace)
        return {lease.spec.holder_identity: float(lease.metadata.annotations[SHARE_ANNOTATION])
                for lease in leases.items
                if SHARE_ANNOTATION in (lease.metadata.annotations or {})}

    async def leader_nearly_whole() -> Any:
        seen = await by_identity()
        ok = sorted(seen.values())
        return (len(ok) == 2 and ok[1] >= 0.95 and ok[0] <= 0.05 and sum(ok) <= 1.0) or None

    await eventually(leader_nearly_whole, 60, "the leader at nearly the whole budget", first)
    seen = await by_identity()
    leader = max(seen, key=lambda k: seen[k])
    print(f"shares with a standby: {seen}")
    victim = next(p for p in pair.procs if p.argv[p.argv.index("--identity") + 1] == leader)
    survivor = next(p for p in pair.procs if p is not victim)
    await victim.kill()

    async def survivor_whole() -> Any:
        seen = await by_identity()
        return seen.get("r1" if leader == "r0" else "r0") == 1.0 or None

    await eventually(survivor_whole, 60, "the standby, now leader, at the whole budget",
                     survivor)
