"""The profile's policy: every identity/network family denied unless allowed by exact value,
sizes bounded by the pod's own requests unless a spec is named, GPU types gated."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vk_eci.cloud.policy.evaluate import PodFacts, evaluate, facts_of_json
from vk_eci.cloud.policy.profile import parse_profile
from vk_eci.cloud.policy.rules import Policy, PolicyError, parse_policy

K = "k8s.aliyun.com/"

# family -> (annotation, a value) — each denied with no profile at all
FAMILIES: dict[str, tuple[str, str]] = {
    "ramRoles": (K + "eci-ram-role-name", "team-b-role"),
    "securityGroups": (K + "eci-security-group", "sg-teamb"),
    "vSwitches": (K + "eci-vswitch", "vsw-teamb"),
    "resourceGroups": (K + "eci-resource-group-id", "rg-teamb"),
    "eipIds": (K + "eci-eip-instanceid", "eip-teamb"),
    "eipIsps": (K + "eip-isp", "BGP_PRO"),
    "bandwidthPackages": (K + "eip-common-bandwidth-package-id", "cbwp-teamb"),
    "acrInstances": (K + "acr-instance-ids", "cn-beijing:cri-teamb"),
    "dataCacheBuckets": (K + "eci-data-cache-bucket", "teamb-bucket"),
    "eipCreate": (K + "eci-with-eip", "true"),
    "eipMaxBandwidth": (K + "eip-bandwidth", "500"),
}


def pod(annotations: dict[str, str] | None = None, ns: str = "team-a", cpu: str = "10m",
        memory: str = "64Mi", gpus: int = 0) -> PodFacts:
    limits: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return facts_of_json({"metadata": {"namespace": ns, "annotations": annotations or {}},
                          "spec": {"containers": [{"name": "c",
                                                   "resources": {"limits": limits}}]}})


def policy(**allow: Any) -> Policy:
    return parse_policy({"rules": [{"name": "team-a", "namespaces": ["team-a"],
                                    "allow": allow}]})


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_denied_without_a_profile_and_named(family: str) -> None:
    annotation, value = FAMILIES[family]
    denial = evaluate(Policy(), pod({annotation: value}))
    assert denial is not None
    assert (denial.annotation, denial.value, denial.rule) == (annotation, value, family)
    message = denial.message()
    assert annotation in message and value in message and family in message


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - {"eipCreate", "eipMaxBandwidth"}))
def test_an_exact_value_in_the_namespaces_rule_allows_it(family: str) -> None:
    annotation, value = FAMILIES[family]
    allowed = value.rpartition(":")[2]
    assert evaluate(policy(**{family: [allowed]}), pod({annotation: value})) is None
    # ... in that namespace only, and only that value
    assert evaluate(policy(**{family: [allowed]}), pod({annotation: value}, ns="team-b"))
    assert evaluate(policy(**{family: [allowed + "x"]}), pod({annotation: value}))


def test_every_item_of_a_list_valued_annotation_must_be_allowed() -> None:
    p = policy(securityGroups=["sg-a"])
    assert evaluate(p, pod({K + "eci-security-group": "sg-a"})) is None
    denial = evaluate(p, pod({K + "eci-security-group": "sg-a,sg-b"}))
    assert denial is not None and "'sg-b'" in denial.reason


def test_eip_creation_and_bandwidth() -> None:
    p = policy(eipCreate=True, eipMaxBandwidth=10)
    assert evaluate(p, pod({K + "eci-with-eip": "true", K + "eip-bandwidth": "10"})) is None
    denial = evaluate(p, pod({K + "eci-with-eip": "true", K + "eip-bandwidth": "500"}))
    assert denial is not None and denial.rule == "eipMaxBandwidth"
    assert evaluate(Policy(), pod({K + "eci-with-eip": "false"})) is None


def test_namespace_label_selector_rules() -> None:
    p = parse_policy({"rules": [{"name": "ml", "namespaceSelector": {
        "matchLabels": {"team": "ml"}}, "allow": {"ramRoles": ["ml-role"]}}]})
    facts = pod({K + "eci-ram-role-name": "ml-role"}, ns="anything")
    assert evaluate(p, facts, {"team": "ml"}) is None
    assert evaluate(p, facts, {"team": "web"}) is not None


def test_use_specs_never_exceeds_the_requests_unless_named() -> None:
    big = {K + "eci-use-specs": "64-512Gi"}
    denial = evaluate(Policy(), pod(big))
    assert denial is not None and denial.rule == "instanceTypes"
    assert "0.25 vCPU / 0.5 GiB" in denial.reason  # 10m / 64Mi round up to ECI's smallest
    assert evaluate(policy(instanceTypes=["64-512Gi"]), pod(big)) is None
    # a spec the requests already round up to needs no allowance
    assert evaluate(Policy(), pod({K + "eci-use-specs": "2-4Gi"}, cpu="2", memory="4Gi")) is None
    # a c/g/r type is sized by its name; ecs.c6.large (2 vCPU / 4 GiB) fits a 2 vCPU pod
    assert evaluate(Policy(), pod({K + "eci-use-specs": "ecs.c6.large"}, cpu="2",
                                    memory="4Gi")) is None
    assert evaluate(Policy(), pod({K + "eci-instance-type": "ecs.c6.8xlarge"}, cpu="2"))


def test_max_cpu_and_memory_bound_even_named_specs() -> None:
    p = policy(maxCpu=4, maxMemory=8, instanceTypes=["8-16Gi"])
    denial = evaluate(p, pod({K + "eci-use-specs": "8-16Gi"}))
    assert denial is not None and denial.rule == "maxCpu"
    denial = evaluate(p, pod(cpu="8", memory="16Gi"))
    assert denial is not None and denial.rule == "maxCpu" and denial.annotation == "resources"
    assert evaluate(p, pod(cpu="2", memory="8Gi")) is None
    assert evaluate(policy(maxMemory=8), pod(cpu="1", memory="16Gi")).rule == "maxMemory"  # type: ignore[union-attr]


def test_gpu_types_need_an_allowance_a_gpu_request_and_a_gpu_node() -> None:
    gpu = {K + "eci-use-specs": "ecs.gn6i-c4g1.xlarge"}
    assert evaluate(Policy(), pod(gpu, gpus=1), node_gpus=2).rule == "gpuTypes"  # type: ignore[union-attr]
    p = policy(gpuTypes=["ecs.gn6i-c4g1.xlarge"])
    assert evaluate(p, pod(gpu), node_gpus=2).rule == "gpuRequest"  # type: ignore[union-attr]
    assert evaluate(p, pod(gpu, gpus=1), node_gpus=0).rule == "nodeGpus"  # type: ignore[union-attr]
    assert evaluate(p, pod(gpu, gpus=1), node_gpus=2) is None


def test_single_tenant_allows_everything() -> None:
    everything = {a: v for a, v in FAMILIES.values()} | {K + "eci-use-specs": "64-512Gi"}
    assert evaluate(Policy(), pod(everything), single_tenant=True) is None


@given(st.sampled_from(sorted(FAMILIES)), st.text(min_size=1, max_size=20).filter(
    lambda s: "," not in s and s.strip() == s and s.strip()), st.sampled_from(["a", "b"]))
def test_a_value_passes_only_where_listed(family: str, value: str, ns: str) -> None:
    """Property: an annotation value passes iff its namespace's rule lists it exactly."""
    annotation, _ = FAMILIES[family]
    if family in ("eipCreate", "eipMaxBandwidth"):
        return
    listed = value.rpartition(":")[2] if family == "acrInstances" else value
    p = parse_policy({"rules": [{"name": "a", "namespaces": ["a"],
                                 "allow": {family: [listed]}}]})
    denial = evaluate(p, pod({annotation: value}, ns=ns))
    assert (denial is None) == (ns == "a")


def test_profile_keys_and_errors() -> None:
    profile = parse_profile({
        "vSwitchIds": "vsw-1, vsw-2", "securityGroupId": "sg-1", "enableClusterIp": "true",
        "selectors": '[{"name": "s", "namespaceSelector": {"matchLabels": {"eci": "true"}},'
                     ' "effect": {"annotations": {"k8s.aliyun.com/eci-ntp-server": "1.1.1.1"},'
                     ' "labels": {"via": "eci"}}}]',
        "policy": "rules:\n- namespaces: [a]\n  allow: {ramRoles: [r]}\n"})
    assert profile.vswitch_ids == ("vsw-1", "vsw-2") and profile.security_group_id == "sg-1"
    assert profile.enable_cluster_ip is True
    chosen = profile.selector_for({"eci": "true"}, {})
    assert chosen is not None and chosen.effect.labels == {"via": "eci"}
    assert profile.selector_for({"eci": "false"}, {}) is None
    assert evaluate(profile.policy, pod({K + "eci-ram-role-name": "r"}, ns="a")) is None
    for bad, key in (({"vSwitchIds": "subnet-1"}, "vSwitchIds"),
                     ({"policy": "rules: [{allow: {}}]"}, "policy.rules[0]"),
                     ({"policy": "rules: [{namespaces: [a], allow: {ramRole: [x]}}]"},
                      "unknown key"),
                     ({"selectors": "[{}]"}, "selectors[0]"),
                     ({"enableClusterIp": "yes"}, "enableClusterIp")):
        with pytest.raises(PolicyError, match=re.escape(key)):
            parse_profile(bad)


def test_enable_cluster_ip_false_turns_service_access_off_and_is_read_each_time() -> None:
    from vk_eci.cloud.policy.gate import PolicyGate

    current = [parse_profile({"enableClusterIp": "false"})]
    gate = PolicyGate(lambda: current[0], lambda ns: {})
    assert not gate.cluster_ip()
    for data in ({"enableClusterIp": "true"}, {}, {"enableClusterIp": " FALSE "}):
        current[0] = parse_profile(data)
        assert gate.cluster_ip() == (data.get("enableClusterIp", "true").strip() != "FALSE")
