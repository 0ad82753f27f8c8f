"""The local control plane is a real Kubernetes: controllers, scheduler, CRDs and watches work."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes_asyncio import client, watch

from vk_eci.controlplane import cluster

pytestmark = pytest.mark.integration

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25}]
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.test.vk-eci.io}
spec:
  group: test.vk-eci.io
  scope: Cluster
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Colour, type: string, jsonPath: .spec.colour}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {colour: {type: string}}}
          status: {type: object, properties: {phase: {type: string}}}
"""


def _until(predicate, timeout: float = 60, interval: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def test_deployment_creates_replicaset_and_pods(control_plane: cluster.ControlPlane,
                                                namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)

    def pods() -> list[dict]:  # type: ignore[type-arg]
        out = control_plane.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json")
        return json.loads(out.stdout)["items"]  # type: ignore[no-any-return]

    found = _until(lambda: len(pods()) == 2 and pods())
    rs = json.loads(control_plane.kubectl("get", "rs", "-n", namespace, "-o", "json").stdout)
    assert len(rs["items"]) == 1
    owner = rs["items"][0]["metadata"]["name"]
    assert {p["metadata"]["ownerReferences"][0]["name"] for p in found} == {owner}


def test_unschedulable_pod_gets_scheduler_event(control_plane: cluster.ControlPlane,
                                                namespace: str) -> None:
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"no-such-label": "anywhere"},
                 "containers": [{"name": "c", "image": "busybox"}]},
    }
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))

    def failed_scheduling() -> bool:
        out = control_plane.kubectl("get", "events", "-n", namespace, "-o", "json",
                                    "--field-selector", "involvedObject.name=picky")
        return any(e["reason"] == "FailedScheduling" for e in json.loads(out.stdout)["items"])

    _until(failed_scheduling)
    got = json.loads(control_plane.kubectl("get", "pod", "picky", "-n", namespace,
                                           "-o", "json").stdout)
    assert got["status"]["phase"] == "Pending"
    assert not got["spec"].get("nodeName")
    scheduled = [c for c in got["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "False" and scheduled[0]["reason"] == "Unschedulable"


def test_cluster_scoped_crd_with_printer_columns(control_plane: cluster.ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", "-", input=CRD)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                          "crd/gadgets.test.vk-eci.io")
    obj = {"apiVersion": "test.vk-eci.io/v1", "kind": "Gadget", "metadata": {"name": "g1"},
           "spec": {"colour": "teal"}}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(obj))
    patch = json.dumps({"status": {"phase": "Shiny"}})
    control_plane.kubectl("patch", "gadget", "g1", "--subresource=status", "--type=merge",
                          "-p", patch)
    lines = control_plane.kubectl("get", "gd").stdout.splitlines()
    assert lines[0].split() == ["NAME", "COLOUR", "PHASE"]
    assert lines[1].split() == ["g1", "teal", "Shiny"]
    # A status write through the main resource is ignored: the subresource is really separate.
    control_plane.kubectl("patch", "gadget", "g1", "--type=merge",
                          "-p", json.dumps({"status": {"phase": "Dull"}}))
    assert control_plane.kubectl("get", "gadget", "g1", "-o",
                                 "jsonpath={.status.phase}").stdout == "Shiny"


async def test_watch_by_node_name_sees_lifecycle(kube_api: client.ApiClient,
                                                 namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    node = f"watch-node-{namespace}"
    events: list[tuple[str, str]] = []

    async def watch_pods() -> None:
        w = watch.Watch()
        async with w.stream(core.list_pod_for_all_namespaces,
                            field_selector=f"spec.nodeName={node}", timeout_seconds=60) as s:
            async for ev in s:
                events.append((ev["type"], ev["object"].metadata.name))
                if ev["type"] == "DELETED":
                    return

    watcher = asyncio.create_task(watch_pods())
    await asyncio.sleep(0.5)
    body = {"metadata": {"name": "watched"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}
    # A pod on another node must not show up in this watch.
    other = {"metadata": {"name": "elsewhere"},
             "spec": {"nodeName": "other-node", "containers": [{"name": "c", "image": "busybox"}]}}
    await core.create_namespaced_pod(namespace, other)
    await core.create_namespaced_pod(namespace, body)
    await core.patch_namespaced_pod("watched", namespace, {"metadata": {"labels": {"x": "1"}}})
    await core.delete_namespaced_pod("watched", namespace, grace_period_seconds=0)
    await asyncio.wait_for(watcher, 30)
    kinds = [t for t, _ in events]
    assert {n for _, n in events} == {"watched"}
    assert kinds[0] == "ADDED" and "MODIFIED" in kinds and kinds[-1] == "DELETED"


def _our_processes(directory: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_up_twice_is_an_error_and_down_leaves_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "cp"
    cp = cluster.up(directory)
    try:
        assert len(cp.running_pids()) == 4
        second = subprocess.run(
            ["python", "-m", "vk_eci", "cluster", "up", "--dir", str(directory)],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already up" in second.stderr
        assert len(_our_processes(directory)) == 4
        got = subprocess.run([str(directory / "bin" / "kubectl"), "--kubeconfig",
                              str(directory / "kubeconfig"), "get", "ns", "default"],
                             capture_output=True, text=True, timeout=30)
        assert got.returncode == 0, got.stderr
    finally:
        down = subprocess.run(["python", "-m", "vk_eci", "cluster", "down", "--dir",
                               str(directory)], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0
    assert "etcd" in down.stdout
    assert _our_processes(directory) == []
    assert cluster.ControlPlane.load(directory) is None


def test_down_stops_a_restarted_api_server_that_an_old_copy_of_the_state_forgot(
        tmp_path: Path) -> None:
    """A test restarts the API server through its own copy of the state while a session
    fixture keeps an older one; an add-on started from that older copy must not make `down`
    forget the new API server (it outlived its etcd, orphaned, retrying every second). And an
    API server whose record is lost entirely is still stopped, before etcd."""
    from vk_eci.controlplane import state

    directory = (tmp_path / "cp").resolve()
    stale = cluster.up(directory)
    try:
        old_apiserver = stale.pids["kube-apiserver"]
        cluster.restart(directory, "kube-apiserver")
        # The add-on of a fixture that holds the state from before the restart.
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)", f"{directory}/x"]
        addon = state.start_process(stale, "addon", sleeper)
        recorded = cluster.ControlPlane.load(directory)
        assert recorded is not None
        new_apiserver = recorded.pids["kube-apiserver"]
        assert new_apiserver != old_apiserver
        assert stale.pids["kube-apiserver"] == new_apiserver   # the copy caught up, too
        # Lost outright: only the directory in its flags says whose it is.
        recorded.pids.pop("kube-apiserver")
        recorded.save()
    finally:
        stopped = cluster.down(directory)
    addon.wait(timeout=5)
    assert stopped.index("kube-apiserver") < stopped.index("etcd"), stopped
    assert stopped[0] == "addon", stopped
    assert _our_processes(directory) == []
