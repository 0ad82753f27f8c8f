"""What a pod costs the API server: one status write per real transition, none on a resync
that finds nothing changed, and no copy of ECI's own ``Scheduled`` event.

Counted on the API server itself (its audit log, which records every PATCH/PUT on
``pods/status`` with the namespace and the client; the metrics' ``apiserver_request_total`` would
also count other tests' pods, e.g. the kube-controller-manager's pod garbage collector marking
Failed the pods an earlier test left on its stopped node) and on a watch of the namespace's
pods (each write that changed something is a new resourceVersion), never from the node's own
bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch

from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_node_pods import pod_body
from vk_eci.cloud.groups import allocated

pytestmark = pytest.mark.integration

PODS = 6


class StatusWrites:
    """PATCH and PUT requests on the pods/status of ``namespace`` the API server answered, by
    client, from its audit log (read from where it ended when this object was made)."""

    def __init__(self, control_plane: Any, namespace: str) -> None:
        self.log: Path = control_plane.audit_log
        self.namespace = namespace
        self.start = self.log.stat().st_size if self.log.exists() else 0

    def by_client(self) -> Counter[str]:
        out: Counter[str] = Counter()
        with self.log.open("rb") as f:
            f.seek(self.start)
            for line in f:
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                if event.get("stage") == "ResponseComplete" and \
                        ref.get("resource") == "pods" and ref.get("subresource") == "status" and \
                        ref.get("namespace") == self.namespace and \
                        event.get("verb") in ("patch", "update"):
                    out[event.get("userAgent", "").split(" ", 1)[0]] += 1
        return out

    def total(self) -> int:
        return sum(self.by_client().values())


async def test_one_status_write_per_transition_and_none_on_unchanged_resync(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        control_plane: Any) -> None:
    # A short resync, so that several full listings pass over the settled pods in the test.
    node = await node_factory(status_resync_interval="3")
    core = client.CoreV1Api(kube_api)
    # Per pod, each status the watch saw (a write that changed nothing leaves no trace), with
    # what ECI allocated: the status write carries it, on the first status that has it, and
    # ECI may report it after the status that write was for (docs/ANNOTATIONS.md).
    statuses: dict[str, list[Any]] = {}
    w = watch.Watch()

    async def follow() -> None:
        async for ev in w.stream(core.list_namespaced_pod, namespace, timeout_seconds=300):
            pod = ev["object"]
            seen = statuses.setdefault(pod.metadata.name, [])
            status = kube_api.sanitize_for_serialization(pod.status)
            given = {k: v for k, v in (pod.metadata.annotations or {}).items()
                     if k in allocated.KEYS}
            if not seen or seen[-1] != (status, given):
                seen.append((status, given))

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    audit = StatusWrites(control_plane, namespace)
    for i in range(PODS):
        # An init container of 200 s (2 s at the emulator's time scale): each pod is seen
        # Pending with ContainersNotReady first, then Running with those conditions True.
        await core.create_namespaced_pod(namespace, pod_body(
            f"p{i}", node.name, ["sleep", "3600"], initContainers=[
                {"name": "init", "image": "busybox:1.36", "command": ["sleep", "200"]}]))

    async def all_running() -> bool:
        pods = (await core.list_namespaced_pod(namespace)).items
        return len(pods) == PODS and all(p.status.phase == "Running" and p.status.pod_ip
                                         for p in pods)

    await eventually(all_running, 90, "all pods Running with an IP", node)
    listings = await _listings(node)
    await eventually(lambda: _more(node, listings + 3), 60, "two more full listings", node)
    await asyncio.sleep(1)
    clients = audit.by_client()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await w.close()

    writes = sum(clients.values())
    changes = sum(len(seen) - 1 for seen in statuses.values())  # after the pod's creation
    phases = {name: [x.get("phase") for x, _ in seen] for name, seen in statuses.items()}
    # Every write changed what users see: none repeated a status the pod already had (e.g.
    # a condition's stale reason the merge kept), however many polls and listings passed.
    assert writes == changes, \
        f"{writes} status writes ({dict(clients)}), {changes} status changes: {phases}"
    assert all(seen[-1] == "Running" for seen in phases.values()), phases

    # Settled: further resyncs write nothing at all.
    settled = audit.total()
    listings = await _listings(node)
    await eventually(lambda: _more(node, listings + 3), 60, "two more full listings", node)
    assert audit.total() == settled, audit.by_client()


async def _listings(node: Any) -> float:
    """Full listings the node began (not DescribeContainerGroups calls: the follow-up reads
    of recently changed groups are such calls too); the third begun means two ended."""
    async with aiohttp.ClientSession() as http, http.get(node.metrics_url) as resp:
        text = await resp.text()
    prefix = "vk_eci_pod_status_sync_cycles_total "
    return sum(float(line[len(prefix):]) for line in text.splitlines()
               if line.startswith(prefix))


async def _more(node: Any, at_least: float) -> bool:
    return await _listings(node) >= at_least


async def test_eci_scheduled_event_not_copied(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str) -> None:
    node = await node_factory()
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body("one", node.name, ["sleep", "3600"]))

    async def copied() -> set[str]:
        items = (await core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=one")).items
        return {e.reason for e in items
                if e.source and e.source.component == "virtual-kubelet"}

    async def started() -> bool:
        return "Started" in await copied()

    await eventually(started, 90, "ECI's Started event copied", node)
    reasons = await copied()
    assert {"Pulling", "Pulled", "Created", "Started"} <= reasons, reasons
    assert "Scheduled" not in reasons, reasons
