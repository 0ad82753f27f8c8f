"""vk_eci.cloud.placement.annotations: ECI placement annotations → CreateContainerGroup fields.

Checked on the wire form the SDK sends (``request.to_map()``), one case per annotation family,
and every bad value or combination as an InvalidAnnotation problem naming key, value and reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio.client import (
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
)

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement import annotations as pa
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.translation.context import TranslateContext
from vk_eci.cloud.translation.pod import pod_to_request

CTX = TranslateContext(Placement(region_id="cn-hangzhou", zone_id="cn-hangzhou-k",
                                 vswitch_ids=("vsw-node",), security_group_id="sg-node"),
                       cluster_name="prod", node_name="vk", cpu_architecture="AMD64")


def pod(annotations: dict[str, str], containers: list[V1Container] | None = None) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", uid="u-1",
                                       annotations=annotations),
                 spec=V1PodSpec(containers=containers or [V1Container(name="a", image="nginx")]))


def wire(annotations: dict[str, str], **kw: Any) -> dict[str, Any]:
    result: dict[str, Any] = pod_to_request(pod(annotations, **kw), CTX).to_map()
    return result


FAMILIES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("spot-as-price-go", {pa.SPOT_STRATEGY: "SpotAsPriceGo", pa.SPOT_DURATION: "0",
                          pa.SPOT_FALLBACK: "true"},
     {"SpotStrategy": "SpotAsPriceGo", "SpotDuration": 0, "StrictSpot": False}),
    ("spot-price-limit", {pa.SPOT_STRATEGY: "SpotWithPriceLimit", pa.SPOT_PRICE_LIMIT: "0.25"},
     {"SpotStrategy": "SpotWithPriceLimit", "SpotPriceLimit": 0.25}),
    ("eip-created", {pa.WITH_EIP: "true", pa.EIP_BANDWIDTH: "10", pa.EIP_ISP: "BGP_PRO",
                     pa.EIP_PACKAGE: "cbwp-abc"},
     {"AutoCreateEip": True, "EipBandwidth": 10, "EipISP": "BGP_PRO",
      "EipCommonBandwidthPackage": "cbwp-abc"}),
    ("eip-bound", {pa.EIP_ID: "eip-bp1q5n8cq4p7f6dzu"},
     {"EipInstanceId": "eip-bp1q5n8cq4p7f6dzu"}),
    ("identity", {pa.RAM_ROLE: "AliyunECIContainerGroupRole", pa.RESOURCE_GROUP: "rg-aek2"},
     {"RamRoleName": "AliyunECIContainerGroupRole", "ResourceGroupId": "rg-aek2"}),
    ("network", {pa.VSWITCH: "vsw-a, vsw-b", pa.SCHEDULE_STRATEGY: "VSwitchRandom",
                 pa.SECURITY_GROUP: "sg-pod", pa.IPV6: "true", pa.FIXED_IP: "true",
                 pa.FIXED_IP_RETAIN: "24", pa.INGRESS_BW: "40M", pa.EGRESS_BW: "500k"},
     {"VSwitchId": "vsw-a,vsw-b", "ScheduleStrategy": "VSwitchRandom",
      "SecurityGroupId": "sg-pod", "Ipv6AddressCount": 1, "FixedIp": "true",
      "FixedIpRetainHour": 24, "IngressBandwidth": 40_000_000, "EgressBandwidth": 500_000}),
    ("sizing", {pa.COMPUTE_CATEGORY: "economy,general", pa.CPU_CORE: "2", pa.CPU_HT: "1",
                pa.EPHEMERAL: "50Gi", pa.GPU_DRIVER: "tesla=525.85.12"},
     {"ComputeCategory": ["economy", "general"], "CpuOptionsCore": 2,
      "CpuOptionsThreadsPerCore": 1, "EphemeralStorage": 50,
      "GpuDriverVersion": "tesla=525.85.12"}),
    ("instance", {pa.CORE_PATTERN: "/pod/data/dump/core", pa.NTP: "100.100.3.1,ntp.aliyun.com"},
     {"CorePattern": "/pod/data/dump/core", "NtpServer": ["100.100.3.1", "ntp.aliyun.com"]}),
    ("registries", {pa.PLAIN_HTTP: "harbor.local,10.0.0.5:5000", pa.INSECURE: "reg.test:443",
                    pa.ACR_IDS: "cri-abc,cn-beijing:cri-def"},
     {"PlainHttpRegistry": "harbor.local,10.0.0.5:5000", "InsecureRegistry": "reg.test:443",
      "AcrRegistryInfo": [{"InstanceId": "cri-abc"},
                          {"InstanceId": "cri-def", "RegionId": "cn-beijing"}]}),
    ("data-cache", {pa.DATA_CACHE_BUCKET: "default", pa.DATA_CACHE_PL: "PL1",
                    pa.DATA_CACHE_IOPS: "40000", pa.DATA_CACHE_BURST: "true"},
     {"DataCacheBucket": "default", "DataCachePL": "PL1", "DataCacheProvisionedIops": 40000,
      "DataCacheBurstingEnabled": True}),
]


@pytest.mark.parametrize(("family", "annotations", "expected"), FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_family_reaches_the_request(family: str, annotations: dict[str, str],
                                    expected: dict[str, Any]) -> None:
    sent = wire(annotations)
    for key, value in expected.items():
        assert sent.get(key) == value, (family, key, sent.get(key))


def test_node_placement_without_annotations() -> None:
    sent = wire({})
    assert sent["VSwitchId"] == "vsw-node" and sent["SecurityGroupId"] == "sg-node"
    assert sent["ZoneId"] == "cn-hangzhou-k" and sent["CpuArchitecture"] == "AMD64"
    assert "SpotStrategy" not in sent and "AutoCreateEip" not in sent


def test_pod_vswitch_overrides_node_and_drops_node_zone() -> None:
    sent = wire({pa.VSWITCH: "vsw-pod"})
    assert sent["VSwitchId"] == "vsw-pod" and "ZoneId" not in sent


def test_custom_tags_follow_ours() -> None:
    tags = wire({pa.CUSTOM_TAGS: "env:test,name:alice"})["Tag"]
    keys = [t["Key"] for t in tags]
    assert keys[-2:] == ["env", "name"] and "k8s.aliyun.com/pod-uid" in keys
    assert {"Key": "env", "Value": "test"} in tags


def test_gpu_per_container_with_a_gpu_instance_type() -> None:
    gpu = V1ResourceRequirements(limits={"nvidia.com/gpu": "1", "cpu": "2"})
    sent = wire({"k8s.aliyun.com/eci-use-specs": "ecs.gn6i-c4g1.xlarge"},
                containers=[V1Container(name="train", image="cuda", resources=gpu),
                            V1Container(name="side", image="nginx")])
    assert sent["InstanceType"] == "ecs.gn6i-c4g1.xlarge"
    assert sent["Container"][0]["Gpu"] == 1 and "Gpu" not in sent["Container"][1]


@pytest.mark.parametrize("use_specs", [None, "2-4Gi"])
def test_gpu_without_a_gpu_instance_type_is_refused(use_specs: str | None) -> None:
    gpu = V1ResourceRequirements(limits={"nvidia.com/gpu": "1"})
    ann = {"k8s.aliyun.com/eci-use-specs": use_specs} if use_specs else {}
    with pytest.raises(InvalidInput, match=r"nvidia\.com/gpu"):
        wire(ann, containers=[V1Container(name="train", image="cuda", resources=gpu)])


BAD: list[tuple[dict[str, str], str, str]] = [
    ({pa.SPOT_STRATEGY: "Cheap"}, pa.SPOT_STRATEGY, "expected one of"),
    ({pa.SPOT_STRATEGY: "SpotWithPriceLimit"}, pa.SPOT_STRATEGY, "needs"),
    ({pa.SPOT_STRATEGY: "SpotWithPriceLimit", pa.SPOT_PRICE_LIMIT: "0.1234"},
     pa.SPOT_PRICE_LIMIT, "three decimals"),
    ({pa.SPOT_PRICE_LIMIT: "0.5"}, pa.SPOT_PRICE_LIMIT, "SpotWithPriceLimit"),
    ({pa.SPOT_DURATION: "1"}, pa.SPOT_DURATION, "needs a spot strategy"),
    ({pa.SPOT_STRATEGY: "SpotAsPriceGo", pa.SPOT_DURATION: "2"}, pa.SPOT_DURATION, "0 to 1"),
    ({pa.WITH_EIP: "yes"}, pa.WITH_EIP, '"true" or "false"'),
    ({pa.EIP_BANDWIDTH: "10"}, pa.EIP_BANDWIDTH, "EIP created with the pod"),
    ({pa.WITH_EIP: "true", pa.EIP_ID: "eip-1"}, pa.EIP_ID, "cannot bind"),
    ({pa.SECURITY_GROUP: "sg-1,sg-2,sg-3,sg-4,sg-5,sg-6"}, pa.SECURITY_GROUP, "1 to 5"),
    ({pa.VSWITCH: "subnet-1"}, pa.VSWITCH, "not a vsw-"),
    ({pa.SCHEDULE_STRATEGY: "Nearest"}, pa.SCHEDULE_STRATEGY, "expected one of"),
    ({pa.RAM_ROLE: "role with spaces"}, pa.RAM_ROLE, "RAM role name"),
    ({pa.EPHEMERAL: "lots"}, pa.EPHEMERAL, "50Gi"),
    ({pa.EPHEMERAL: "4Ti"}, pa.EPHEMERAL, "2048Gi"),
    ({pa.CORE_PATTERN: "|/bin/dump"}, pa.CORE_PATTERN, "absolute"),
    ({pa.CUSTOM_TAGS: "a:1,b:2,c:3,d:4"}, pa.CUSTOM_TAGS, "1 to 3"),
    ({pa.CUSTOM_TAGS: "vk-eci.io/node:x"}, pa.CUSTOM_TAGS, "reserved"),
    ({pa.CUSTOM_TAGS: "novalue"}, pa.CUSTOM_TAGS, "key:value"),
    ({pa.ACR_IDS: "registry-1"}, pa.ACR_IDS, "cri-"),
    ({pa.PLAIN_HTTP: "http://harbor/x"}, pa.PLAIN_HTTP, "host[:port]"),
    ({pa.INGRESS_BW: "fast"}, pa.INGRESS_BW, "40M"),
    ({pa.IPV6: "true", pa.IPV6_COUNT: "1"}, pa.IPV6_COUNT, "not both"),
    ({pa.GPU_DRIVER: "tesla=1"}, pa.GPU_DRIVER, "expected tesla=<driver version>"),
    ({pa.FIXED_IP_RETAIN: "5"}, pa.FIXED_IP_RETAIN, "needs a fixed IP"),
]


@pytest.mark.parametrize(("annotations", "key", "reason"), BAD)
def test_bad_value_is_a_problem_naming_key_and_value(annotations: dict[str, str], key: str,
                                                     reason: str) -> None:
    problems = pa.parse_placement(annotations).problems
    assert any(p.key == key and reason in p.reason for p in problems), problems
    named = next(p for p in problems if p.key == key)
    assert key in named.message() and annotations[key] in named.message()
    # The pod is refused rather than created without what it asked for.
    with pytest.raises(InvalidInput) as err:
        wire(annotations)
    assert err.value.code == "InvalidAnnotation"


def test_unrelated_annotations_are_no_problem() -> None:
    placement = pa.parse_placement({"team": "a", "k8s.aliyun.com/eci-image-cache": "true"})
    assert placement.problems == () and dict(placement.fields) == {}


@pytest.mark.parametrize(("annotations", "cpu", "types"), [
    ({pa.FAMILY: "ecs.c6,ecs.g6"}, "2", "ecs.c6.large,ecs.g6.large"),
    ({pa.GENERATION: "6"}, "4", "ecs.c6.xlarge,ecs.g6.xlarge,ecs.r6.xlarge"),
    ({pa.FAMILY: "ecs.c7,ecs.g6", pa.GENERATION: "6"}, "2", "ecs.g6.large"),
    ({pa.GENERATION: "7,6"}, "2", "ecs.c7.large,ecs.g7.large,ecs.r7.large,ecs.c6.large,"
                                  "ecs.g6.large"),
    # The exclude form: the other c/g/r families of generations 7-5, smallest fit first.
    ({pa.FAMILY: "-ecs.c7, -ecs.c6"}, "2", "ecs.c5.large,ecs.g7.large,ecs.g6.large,"
                                           "ecs.g5.large,ecs.r7.large"),
    ({pa.GENERATION: "-7,-5"}, "2", "ecs.c6.large,ecs.g6.large,ecs.r6.large"),
])
def test_instance_family_and_generation_become_instance_types(
        annotations: dict[str, str], cpu: str, types: str) -> None:
    res = V1ResourceRequirements(limits={"cpu": cpu, "memory": "4Gi"})
    sent = wire(annotations, containers=[V1Container(name="a", image="nginx", resources=res)])
    assert sent["InstanceType"] == types


def test_family_too_small_for_the_pod_is_refused() -> None:
    res = V1ResourceRequirements(limits={"cpu": "2", "memory": "512Gi"})
    with pytest.raises(InvalidInput, match=r"no type of ecs\.c6"):
        wire({pa.FAMILY: "ecs.c6"}, containers=[V1Container(name="a", image="x", resources=res)])


@pytest.mark.parametrize(("annotations", "key", "reason"), [
    ({pa.FAMILY: "ecs.gn6i"}, pa.FAMILY, "not a c, g or r ECS family"),
    ({pa.GENERATION: "six"}, pa.GENERATION, "generations from 5 to 9"),
    ({pa.FAMILY: "ecs.c6,-ecs.g6"}, pa.FAMILY, "not both"),
    ({pa.FAMILY: "ecs.c6", "k8s.aliyun.com/eci-use-specs": "2-4Gi"}, pa.FAMILY, "sized by vCPU"),
])
def test_bad_family_or_generation(annotations: dict[str, str], key: str, reason: str) -> None:
    problems = pa.parse_placement(annotations).problems
    assert any(p.key == key and reason in p.reason for p in problems), problems


def test_older_instance_type_annotation_sizes_the_pod() -> None:
    gpu = V1ResourceRequirements(limits={"nvidia.com/gpu": "1"})
    sent = wire({"k8s.aliyun.com/eci-instance-type": "ecs.gn6i-c4g1.xlarge"},
                containers=[V1Container(name="t", image="cuda", resources=gpu)])
    assert sent["InstanceType"] == "ecs.gn6i-c4g1.xlarge" and sent["Container"][0]["Gpu"] == 1
    for bad in ({"k8s.aliyun.com/eci-instance-type": "2-4Gi"},
                {"k8s.aliyun.com/eci-instance-type": "ecs.c6.large",
                 "k8s.aliyun.com/eci-use-specs": "ecs.c6.large"}):
        [problem] = pa.parse_placement(bad).problems
        assert problem.key == "k8s.aliyun.com/eci-instance-type"


KEYS = sorted({*pa.FIELDS, pa.CUSTOM_TAGS, pa.ACR_IDS, pa.ACR_ID, pa.FAMILY, pa.GENERATION,
               "k8s.aliyun.com/eci-instance-type", "k8s.aliyun.com/eci-use-specs"})


@given(st.dictionaries(st.sampled_from(KEYS), st.text(max_size=40), max_size=6))
def test_parsing_never_raises_and_names_only_given_keys(annotations: dict[str, str]) -> None:
    placement = pa.parse_placement(annotations)
    for problem in placement.problems:
        assert problem.key in annotations and problem.value == annotations[problem.key]
        assert problem.reason
    # Every field set came from an annotation that was given.
    given_attrs = {pa.FIELDS[k][0] for k in annotations if k in pa.FIELDS}
    assert set(placement.fields) <= given_attrs


def test_schedule_strategy_applies_to_the_nodes_vswitches_too() -> None:
    ctx = TranslateContext(Placement(region_id="cn-hangzhou", vswitch_ids=("vsw-a", "vsw-b"),
                                     security_group_id="sg-1"), cluster_name="c", node_name="n")
    sent = pod_to_request(pod({pa.SCHEDULE_STRATEGY: "VSwitchRandom"}), ctx).to_map()
    assert (sent["VSwitchId"], sent["ScheduleStrategy"]) == ("vsw-a,vsw-b", "VSwitchRandom")


def test_fail_strategy_pending_limit_and_unsendable_annotations() -> None:
    placement = pa.parse_placement({pa.FAIL_STRATEGY: "fail-fast", pa.MAX_PENDING: "30",
                                    pa.GPU_DRIVER: "tesla=535.161.08",
                                    pa.EVICTION: "false"})
    assert (placement.fail_strategy, placement.max_pending_minutes) == ("fail-fast", 30)
    assert placement.fields["gpu_driver_version"] == "tesla=535.161.08"
    assert not placement.problems
    assert pa.parse_placement({}).max_pending_minutes == 240
    for key, value in ((pa.MAX_PENDING, "1441"), (pa.FAIL_STRATEGY, "retry"),
                       (pa.PRIVATE_POOL_ID, "eap-1"), (pa.EVICTION, "true"),
                       (pa.EPHEMERAL_OPTIONS, '{"encrypted":"true"}'),
                       (pa.IPV6_BW_ENABLE, "true")):
        assert [p.key for p in pa.parse_placement({key: value}).problems] == [key], key


def test_a_private_pool_is_refused_once_naming_both_annotations() -> None:
    both = {pa.PRIVATE_POOL_ID: "eap-1", pa.PRIVATE_POOL_MATCH: "Target"}
    [problem] = pa.parse_placement(both).problems
    assert problem.key == pa.PRIVATE_POOL_MATCH   # the family's first key, whatever the order
    assert pa.PRIVATE_POOL_MATCH in problem.message() and pa.PRIVATE_POOL_ID in problem.message()
    [alone] = pa.parse_placement({pa.PRIVATE_POOL_ID: "eap-1"}).problems
    assert alone.key == pa.PRIVATE_POOL_ID
