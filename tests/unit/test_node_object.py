"""vk_eci.cluster.node.controller / lease: the pure builders of the Node and Lease objects."""

from __future__ import annotations

from vk_eci.cluster.node import controller as node
from vk_eci.cluster.node import lease
from vk_eci.config import validate

S = validate({"region": "cn-hangzhou", "zone": "cn-hangzhou-h", "vswitches": ["vsw-a"],
              "security_group": "sg-1", "cpu": "200", "memory": "800Gi", "pods": 300,
              "kubelet_port": 10250, "labels": {"team": "ci"}, "node_ip": "10.0.0.7"})


def test_labels_and_taint() -> None:
    n = node.build_node(S, node.Health(True), "v1.30.0-vk-eci-0.1.0", "2024-01-01T00:00:00Z")
    labels = n["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/hostname"] == "virtual-kubelet"
    assert labels["topology.kubernetes.io/region"] == "cn-hangzhou"
    assert labels["topology.kubernetes.io/zone"] == "cn-hangzhou-h"
    assert labels["team"] == "ci"
    assert n["spec"]["taints"] == [{"key": "virtual-kubelet.io/provider",
                                    "value": "alibabacloud", "effect": "NoSchedule"}]


def test_no_zone_label_without_zone() -> None:
    s = validate({"region": "cn-hangzhou", "vswitches": ["vsw-a"], "security_group": "sg-1"})
    assert "topology.kubernetes.io/zone" not in node.node_labels(s)


def test_status_capacity_addresses_endpoint_info() -> None:
    st = node.node_status(S, node.Health(True), "v1.30.0-vk-eci-0.1.0", "t0")
    assert st["capacity"] == {"cpu": "200", "memory": "800Gi", "pods": "300",
                              "ephemeral-storage": "40Ti"}
    assert st["allocatable"] == st["capacity"]
    assert {"type": "InternalIP", "address": "10.0.0.7"} in st["addresses"]
    assert {"type": "Hostname", "address": "virtual-kubelet"} in st["addresses"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert st["nodeInfo"]["kubeletVersion"] == "v1.30.0-vk-eci-0.1.0"
    assert st["nodeInfo"]["operatingSystem"] == "linux"
    types = [c["type"] for c in st["conditions"]]
    assert types == ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure",
                     "NetworkUnavailable"]


def test_gpu_capacity_only_when_configured_and_arch_per_node() -> None:
    plain = node.node_status(S, node.Health(True), "v1", "t0")
    assert "nvidia.com/gpu" not in plain["capacity"]
    assert plain["nodeInfo"]["architecture"] == "amd64"
    assert node.node_labels(S)["kubernetes.io/arch"] == "amd64"
    gpu_arm = validate({"region": "cn-hangzhou", "vswitches": ["vsw-a"], "security_group": "sg-1",
                        "gpu": 8, "ephemeral_storage": "2Ti", "architecture": "ARM64"})
    st = node.node_status(gpu_arm, node.Health(True), "v1", "t0")
    assert st["capacity"]["nvidia.com/gpu"] == "8"
    assert st["allocatable"]["nvidia.com/gpu"] == "8"
    assert st["capacity"]["ephemeral-storage"] == "2Ti"
    assert st["nodeInfo"]["architecture"] == "arm64"
    assert node.node_labels(gpu_arm)["kubernetes.io/arch"] == "arm64"


def test_ready_follows_health_and_transition_time_is_kept() -> None:
    first = node.conditions(node.Health(True), "t0")
    ready = first[0]
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        "True", "KubeletReady", "t0")
    same = node.conditions(node.Health(True), "t1", first)
    assert same[0]["lastTransitionTime"] == "t0" and same[0]["lastHeartbeatTime"] == "t1"
    down = node.conditions(node.Health(False, "Timeout"), "t2", same)
    assert down[0]["status"] == "False"
    assert down[0]["reason"] == "EciUnreachable"
    assert "Timeout" in down[0]["message"]
    assert down[0]["lastTransitionTime"] == "t2"
    assert down[1]["lastTransitionTime"] == "t0"  # MemoryPressure did not change


def test_adoption_keeps_other_taints() -> None:
    other = {"key": "dedicated", "value": "x", "effect": "NoExecute"}
    old_ours = {"key": "virtual-kubelet.io/provider", "value": "old", "effect": "NoSchedule"}
    patch = node.adoption_patch(S, [other, old_ours])
    assert patch["spec"]["taints"] == [other, node.node_taint()]
    assert patch["metadata"]["labels"]["type"] == "virtual-kubelet"


def test_kubelet_version_is_semver() -> None:
    assert node.kubelet_version("v1.31.2+k3s1") == "v1.31.2-vk-eci-0.1.0"
    assert node.kubelet_version("v1.30.0-rc.1") == "v1.30.0-vk-eci-0.1.0"
    assert node.kubelet_version("") == "v0.0.0-vk-eci-0.1.0"


def test_node_ip_falls_back() -> None:
    s = validate({"region": "cn-hangzhou", "vswitches": ["vsw-a"], "security_group": "sg-1"})
    assert node.node_ip(s, {"POD_IP": "10.1.2.3"}) == "10.1.2.3"
    assert node.node_ip(s, {}) == "127.0.0.1"
    # A kubelet API bound to one address (a node in its own network namespace) advertises it;
    # an explicit --node-ip and $POD_IP still win.
    bound = validate({"region": "cn-hangzhou", "vswitches": ["vsw-a"], "security_group": "sg-1",
                      "kubelet_address": "10.250.0.2"})
    assert node.node_ip(bound, {}) == "10.250.0.2"
    assert node.node_ip(bound, {"POD_IP": "10.1.2.3"}) == "10.1.2.3"
    wildcard = validate({"region": "cn-hangzhou", "vswitches": ["vsw-a"], "security_group": "sg-1",
                         "kubelet_address": "::"})
    assert node.node_ip(wildcard, {}) == "127.0.0.1"


def test_lease_object() -> None:
    body = lease.build_lease("virtual-kubelet", "uid-1", 40.0, "2024-01-01T00:00:00.000000Z")
    assert body["metadata"]["namespace"] == "kube-node-lease"
    assert body["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1", "kind": "Node", "name": "virtual-kubelet", "uid": "uid-1"}
    assert body["spec"] == {"holderIdentity": "virtual-kubelet", "leaseDurationSeconds": 40,
                            "renewTime": "2024-01-01T00:00:00.000000Z"}
    assert "ownerReferences" not in lease.build_lease("n", "", 40, "t")["metadata"]
