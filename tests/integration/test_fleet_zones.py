"""A fleet of virtual nodes, one per zone.

- The chart's ``nodes`` list renders one Deployment per node (each with its hot standby, its
  own Node name, zone, vSwitches, overrides and leader Lease, one ServiceAccount for all), the
  RBAC names every node, ``helm lint --strict`` passes and the API server accepts it all
  (server-side dry run), and each Deployment's flags parse to that node's settings.
- A real ``helm install`` of that fleet into the cluster: the API server holds one Deployment
  per zone, the controller manager makes each node's two replicas, and ``helm uninstall``
  removes them all.
- Three virtual nodes in one cluster against one emulator, one zone each: a Deployment with a
  zone ``topologySpreadConstraints`` is spread across them by the real scheduler, and every
  pod's container group is in its node's zone's vSwitch.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_chart import (
    CHART,
    by_kind,
    dry_run,
    helm,  # noqa: F401  (the module's helm fixture)
    render,
    run_helm,
    settings_of,
)
from tests.integration.test_node_pods import live_groups, tag
from vk_eci.cloud.api.naming import TAG_POD_UID
from vk_eci.controlplane import cluster
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

ZONES = {"cn-hangzhou-h": "vsw-h1", "cn-hangzhou-i": "vsw-i1", "cn-hangzhou-j": "vsw-j1"}
FLEET: dict[str, Any] = {
    "eci": {"region": "cn-hangzhou", "vswitches": ["vsw-default"], "securityGroup": "sg-1"},
    "nodes": [
        {"name": "vk-hz-h", "zone": "cn-hangzhou-h", "vswitches": ["vsw-h1"]},
        {"name": "vk-hz-i", "zone": "cn-hangzhou-i", "vswitches": ["vsw-i1", "vsw-i2"],
         "overrides": {"node": {"capacity": {"pods": 5000}}}},
        {"name": "vk-hz-j", "zone": "cn-hangzhou-j"},
    ],
}


def test_chart_renders_one_deployment_per_zone(helm: Path, tmp_path: Path,  # noqa: F811
                                               control_plane: cluster.ControlPlane,
                                               namespace: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(FLEET))
    assert "0 chart(s) failed" in run_helm(helm, "lint", "--strict", str(CHART), "-f",
                                           str(path)).stdout
    docs = render(helm, tmp_path, FLEET, namespace=namespace)
    dry_run(control_plane, docs)
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    assert sorted(deployments) == ["vk-vk-eci-vk-hz-h", "vk-vk-eci-vk-hz-i", "vk-vk-eci-vk-hz-j"]
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
                 for d in deployments.values()]
    assert len(set(selectors)) == 3, "each node's Deployment selects only its own pods"
    settings = {name: settings_of(d) for name, d in deployments.items()}
    h, i, j = (settings[f"vk-vk-eci-vk-hz-{z}"] for z in "hij")
    assert (h.node_name, h.zone, tuple(h.vswitches)) == ("vk-hz-h", "cn-hangzhou-h", ("vsw-h1",))
    assert (i.zone, tuple(i.vswitches), i.pods) == ("cn-hangzhou-i", ("vsw-i1", "vsw-i2"), 5000)
    assert (j.zone, tuple(j.vswitches), j.pods) == ("cn-hangzhou-j", ("vsw-default",), 1000)
    for name, s in settings.items():
        # Hot standby per node, on a leader Lease of its own; one account budget for all.
        assert deployments[name]["spec"]["replicas"] == 2 and s.node_leader_election
        assert s.node_leader_lease_name == f"{name}-leader"
        assert s.eci_account_sharing and s.eci_account_lease_namespace == namespace
        # The ImageCache controller: one leader Lease for the whole cluster, not one per node.
        assert (s.imagecache_lease_namespace, s.imagecache_lease_name) == (
            "kube-system", "vk-eci-imagecache-controller")
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "vk-vk-eci"
    # The RBAC names every node, every node's leader Lease.
    names = {n for r in by_kind(docs, "ClusterRole") + by_kind(docs, "Role")
             for rule in r["rules"] for n in rule.get("resourceNames", [])}
    assert {"vk-hz-h", "vk-hz-i", "vk-hz-j"} <= names
    assert {f"{d}-leader" for d in deployments} <= names
    # The cache advisor once per cluster: one Lease for every node, which the Role grants
    # with the listing of every node's demand ConfigMap (docs/ADVISOR.md "A fleet").
    docs = render(helm, tmp_path, {**FLEET, "imageCache": {"advisor": {"mode": "suggest"}}},
                  namespace=namespace)
    dry_run(control_plane, docs)
    leases = {settings_of(d).imagecache_advisor_lease for d in by_kind(docs, "Deployment")}
    assert leases == {f"{namespace}/vk-vk-eci-imagecache-advisor"}
    [role] = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-advisor")]
    rules = {(rule["resources"][0], verb, ",".join(rule.get("resourceNames", [])))
             for rule in role["rules"] for verb in rule["verbs"]}
    assert {("configmaps", "list", ""), ("leases", "create", ""),
            ("leases", "get", "vk-vk-eci-imagecache-advisor"),
            ("leases", "update", "vk-vk-eci-imagecache-advisor")} <= rules
    assert {settings_of(d).imagecache_advisor_configmap.partition("/")[0]
            for d in by_kind(docs, "Deployment")} == {namespace}


def test_helm_install_of_a_three_zone_fleet_and_uninstall(
        helm: Path, tmp_path: Path, control_plane: cluster.ControlPlane,  # noqa: F811
        namespace: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(FLEET))
    release = f"f{uuid.uuid4().hex[:6]}"
    kube = ("--namespace", namespace, "--kubeconfig", str(control_plane.kubeconfig))
    run_helm(helm, "install", release, str(CHART), "-f", str(path), *kube)
    try:
        out = control_plane.kubectl("get", "deployments", "-n", namespace, "-o", "json")
        deployments = {d["metadata"]["name"]: d for d in yaml.safe_load(out.stdout)["items"]}
        assert sorted(deployments) == [f"{release}-vk-eci-vk-hz-{z}" for z in "hij"]
        assert all(d["spec"]["replicas"] == 2 for d in deployments.values())

        def replicas() -> Counter[str]:
            pods = yaml.safe_load(control_plane.kubectl(
                "get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
            return Counter(p["metadata"]["labels"].get("vk-eci.io/node", "") for p in pods)

        # The controller manager acts on what helm installed: each node's leader and standby.
        deadline = time.monotonic() + 60
        while replicas() != Counter({"vk-hz-h": 2, "vk-hz-i": 2, "vk-hz-j": 2}):
            assert time.monotonic() < deadline, f"replicas: {replicas()}"
            time.sleep(1)
        status = run_helm(helm, "status", release, *kube).stdout
        assert "STATUS: deployed" in status
    finally:
        run_helm(helm, "uninstall", release, "--wait", "--timeout", "60s", *kube)
    left = control_plane.kubectl("get", "deployments,clusterroles", "-A", "-o", "name").stdout
    assert release not in left


async def test_scheduler_spreads_a_deployment_across_three_zones(
        node_factory: NodeFactory, emulator_realtime: Emulator, kube_api: client.ApiClient,
        namespace: str) -> None:
    fleet = f"fleet-{uuid.uuid4().hex[:6]}"
    nodes = {}
    for zone, vswitch in ZONES.items():
        node = await node_factory(zone=zone, vswitch=vswitch, labels=f"fleet={fleet}",
                                  eci_account_lease_namespace=namespace)
        nodes[node.name] = (zone, vswitch)
    core = client.CoreV1Api(kube_api)

    async def all_ready() -> bool:
        ready = 0
        for name in nodes:
            node = await core.read_node(name)
            labels = node.metadata.labels or {}
            assert labels["topology.kubernetes.io/zone"] == nodes[name][0]
            assert labels["topology.kubernetes.io/region"] == "cn-hangzhou"
            ready += any(c.type == "Ready" and c.status == "True"
                         for c in node.status.conditions or [])
        return ready == len(nodes)

    await eventually(all_ready, 60, "three zone nodes Ready")
    labels = {"app": fleet}
    body = {
        "metadata": {"name": fleet},
        "spec": {
            "replicas": 6, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "containers": [{"name": "main", "image": "nginx:1.25"}],
                "nodeSelector": {"fleet": fleet},
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule", "labelSelector":
                        {"matchLabels": labels}}]}}}}
    await client.AppsV1Api(kube_api).create_namespaced_deployment(namespace, body)

    async def running() -> Any:
        pods = (await core.list_namespaced_pod(namespace, label_selector=f"app={fleet}")).items
        if len(pods) == 6 and all(p.status.phase == "Running" for p in pods):
            return pods
        return None

    pods = await eventually(running, 120, "six spread pods Running")
    per_zone = Counter(nodes[p.spec.node_name][0] for p in pods)
    assert per_zone == {zone: 2 for zone in ZONES}, per_zone
    # Each group went into its node's zone's vSwitch.
    by_uid = {p.metadata.uid: nodes[p.spec.node_name][1] for p in pods}
    placed = {tag(g, TAG_POD_UID): g.placed.vswitch if g.placed else None
              for g in live_groups(emulator_realtime)}
    assert {uid: placed.get(uid) for uid in by_uid} == by_uid
