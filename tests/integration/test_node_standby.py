"""Hot standby: replicas of one node elect a leader, only the leader writes, a standby takes over.

Two ``vk-eci run`` processes with the same node name and ``--node-leader-election`` against the
real control plane and the emulator. Which process wrote what is read from the API server
itself: every write of a replica carries its field manager ``vk-eci@<identity>`` (the user
agent), recorded with a time in each pod's ``managedFields``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually, free_port, node_command, node_env
from tests.integration.test_node_pods import live_groups, pod_body, tag
from vk_eci.cluster.node.standby import HOLDER_ANNOTATION

pytestmark = pytest.mark.integration


class NotYet(str):
    """A falsy answer that says what was seen (shown when ``eventually`` gives up)."""

    def __bool__(self) -> bool:
        return False


class Replicas:
    """The replicas of one node, started and stopped together."""

    def __init__(self, cp: Any, emu: Any, tmp_path: Path, namespace: str) -> None:
        self.cp, self.emu, self.tmp_path, self.namespace = cp, emu, tmp_path, namespace
        self.name = f"vk-ha-{uuid.uuid4().hex[:6]}"
        self.lease = f"lead-{self.name}"
        self.procs: list[NodeProcess] = []

    async def start(self, identity: str, election: bool = True,
                    **extra: str | bool) -> NodeProcess:
        port = free_port()
        flags: dict[str, str | bool] = {"identity": identity, **extra}
        if election:
            flags.update(node_leader_election=True, node_leader_lease_namespace=self.namespace,
                         node_leader_lease_name=self.lease)
        proc = NodeProcess(name=self.name, argv=node_command(
            self.cp.kubeconfig, self.emu.endpoint, self.name, port, **flags), env=node_env(),
            log_path=self.tmp_path / f"{identity}.log", metrics_port=port)
        await proc.start()
        self.procs.append(proc)
        return proc

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.proc is not None and proc.proc.returncode is None:
                proc.proc.send_signal(signal.SIGCONT)
            await proc.stop()
        self.cp.kubectl("delete", "node", self.name, "--wait=false", check=False)


@pytest.fixture
async def replicas(control_plane: Any, emulator_realtime: Any, tmp_path: Path,
                   namespace: str) -> Any:
    r = Replicas(control_plane, emulator_realtime, tmp_path, namespace)
    yield r
    await r.stop()


async def leader_of(coord: client.CoordinationV1Api, r: Replicas) -> str:
    lease = await coord.read_namespaced_lease(r.lease, r.namespace)
    return str(lease.spec.holder_identity or "")


async def node_lease_holder(coord: client.CoordinationV1Api, r: Replicas) -> str:
    lease = await coord.read_namespaced_lease(r.name, "kube-node-lease")
    return str((lease.metadata.annotations or {}).get(HOLDER_ANNOTATION, ""))


def writes(pod: Any) -> dict[str, dt.datetime]:
    """Field manager → time of its last write, for our replicas' managers."""
    return {m.manager.removeprefix("vk-eci@"): m.time for m in pod.metadata.managed_fields or []
            if m.manager.startswith("vk-eci@") and m.time is not None}


class ReadyWatch:
    """Samples the Node's Ready condition until stopped; remembers any moment it was not True."""

    def __init__(self, core: client.CoreV1Api, name: str) -> None:
        self.core, self.name = core, name
        self.not_ready: list[str] = []
        self.samples = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            node = await self.core.read_node(self.name)
            ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
            self.samples += 1
            if not ready or ready[0].status != "True":
                self.not_ready.append(f"{time.strftime('%X')}: {ready[0].reason if ready else '-'}")
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _ready(core: client.CoreV1Api, name: str) -> bool:
    node = await core.read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


async def test_standby_takes_over_after_leader_sigkill_mid_burst(
        replicas: Replicas, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core, coord = client.CoreV1Api(kube_api), client.CoordinationV1Api(kube_api)
    a = await replicas.start("replica-a")
    await eventually(lambda: _ready(core, replicas.name), 60, "node Ready", a)
    assert await leader_of(coord, replicas) == "replica-a"
    b = await replicas.start("replica-b")
    await asyncio.sleep(3)  # b is up, standing by
    assert b.running and await leader_of(coord, replicas) == "replica-a"
    assert await node_lease_holder(coord, replicas) == "replica-a"
    ready = ReadyWatch(core, replicas.name)
    try:
        # A burst of slow creates, so that the kill lands with creates in flight.
        emulator_realtime.faults.set_latency(0.5, "CreateContainerGroup")
        for i in range(30):
            await core.create_namespaced_pod(namespace, pod_body(f"h{i}", replicas.name,
                                                                 ["sleep", "infinity"]))

        async def some_groups() -> bool:
            return len(live_groups(emulator_realtime)) >= 5
        await eventually(some_groups, 30, "burst under way", a, every=0.05)
        await a.kill()
        killed_at = time.monotonic()
        assert len(live_groups(emulator_realtime)) < 30, "the burst was over before the kill"
        emulator_realtime.faults.set_latency(0.0, "CreateContainerGroup")
        uids = {p.metadata.name: p.metadata.uid
                for p in (await core.list_namespaced_pod(namespace)).items}

        async def b_writes() -> bool:
            pods = (await core.list_namespaced_pod(namespace)).items
            return any("replica-b" in writes(p) for p in pods)
        await eventually(b_writes, 30, "replica-b writing pod status", b, every=0.2)
        failover = time.monotonic() - killed_at

        async def converged() -> Any:
            pods = (await core.list_namespaced_pod(namespace)).items
            phases = Counter(p.status.phase for p in pods)
            groups = Counter("running" if g.running_at else "not running"
                             for g in live_groups(emulator_realtime))
            if len(pods) == 30 and phases["Running"] == 30 and sum(groups.values()) == 30:
                return True
            return NotYet(f"pods {dict(phases)}, groups {dict(groups)}")
        await eventually(converged, 120, "30 Running pods and exactly 30 groups", b)
    finally:
        await ready.stop()
    assert await leader_of(coord, replicas) == "replica-b"
    assert await node_lease_holder(coord, replicas) == "replica-b"
    pods = (await core.list_namespaced_pod(namespace)).items
    # No pod evicted, replaced or restarted; one group per pod, none twice.
    assert {p.metadata.name: p.metadata.uid for p in pods} == uids
    restarted = {p.metadata.name: [(cs.restart_count, cs.last_state) for cs in
                                   p.status.container_statuses or [] if cs.restart_count]
                 for p in pods}
    assert not any(restarted.values()), {k: v for k, v in restarted.items() if v}
    assert sorted(tag(g, "k8s.aliyun.com/pod-uid") or "" for g in live_groups(
        emulator_realtime)) == sorted(uids.values())
    assert ready.samples > 10 and ready.not_ready == [], ready.not_ready
    print(f"failover: pod status writes resumed {failover:.1f}s after SIGKILL of the leader",
          file=sys.stderr)
    assert failover < 30


async def test_a_paused_leader_never_writes_after_its_successor(
        replicas: Replicas, kube_api: client.ApiClient, namespace: str) -> None:
    """Fencing: SIGSTOP the leader past its Lease, let the standby lead, SIGCONT the old one:
    it stops without one more write (its queued status cycles find the fence closed), then
    stands by again in a fresh process of its own."""
    core, coord = client.CoreV1Api(kube_api), client.CoordinationV1Api(kube_api)
    a = await replicas.start("replica-a")
    await eventually(lambda: _ready(core, replicas.name), 60, "node Ready", a)
    b = await replicas.start("replica-b")
    for i in range(3):
        await core.create_namespaced_pod(namespace, pod_body(f"f{i}", replicas.name,
                                                             ["sleep", "infinity"]))

    async def running(n: int) -> bool:
        pods = (await core.list_namespaced_pod(namespace)).items
        return sum(p.status.phase == "Running" for p in pods) >= n
    await eventually(lambda: running(3), 60, "3 pods Running", a)
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)
    stopped_at = dt.datetime.now(dt.UTC)

    async def b_leads() -> bool:
        return await leader_of(coord, replicas) == "replica-b"
    await eventually(b_leads, 40, "replica-b leading", b)
    # The successor writes: a new pod reaches Running under b.
    await core.create_namespaced_pod(namespace, pod_body("after", replicas.name,
                                                         ["sleep", "infinity"]))
    await eventually(lambda: running(4), 60, "the new pod Running", b)
    a.proc.send_signal(signal.SIGCONT)

    async def a_stands_by_again() -> bool:
        # It stops, then re-executes itself (same PID) as a standby: it does not exit and
        # leave its node one replica short.
        logs = a.logs()
        restarted = logs.find("restarts as a standby")
        return restarted >= 0 and "stands by for leadership" in logs[restarted:]
    await eventually(a_stands_by_again, 30, "the deposed leader standing by again", a)
    assert a.running
    await asyncio.sleep(2)
    pods = (await core.list_namespaced_pod(namespace)).items
    # managedFields times are whole seconds: a write after the pause would carry a time at or
    # after the second the pause began.
    late = {p.metadata.name: t for p in pods for who, t in writes(p).items()
            if who == "replica-a" and t >= stopped_at.replace(microsecond=0)
            + dt.timedelta(seconds=1)}
    node = await core.read_node(replicas.name)
    node_write = writes(node).get("replica-a")
    if node_write and node_write >= stopped_at.replace(microsecond=0) + dt.timedelta(seconds=1):
        late["Node"] = node_write
    assert late == {}, f"the deposed leader wrote after its successor took over: {late}"
    assert "replica-b" in writes(node)
    assert "replica-b" in writes(next(p for p in pods if p.metadata.name == "after"))
    assert await node_lease_holder(coord, replicas) == "replica-b"
    assert "lost leadership" in a.logs()


async def test_a_second_unelected_process_for_the_same_node_refuses_to_run(
        replicas: Replicas, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    a = await replicas.start("solo-a", election=False)
    await eventually(lambda: _ready(core, replicas.name), 60, "node Ready", a)
    b = await replicas.start("solo-b", election=False)
    assert b.proc is not None

    async def b_exited() -> bool:
        return b.proc is not None and b.proc.returncode is not None
    await eventually(b_exited, 30, "the second process refusing", b)
    assert b.proc.returncode == 3
    assert "already served by solo-a" in b.logs()
    assert a.running and await _ready(core, replicas.name)
