"""vk_eci.cloud.placement.specs: the spec table, pod sizing and eci-use-specs."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import V1Container, V1ResourceRequirements

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.specs import (
    SPEC_TABLE,
    SUPPORTED_SPECS,
    SpecChoice,
    choose_spec,
    parse_quantity,
    parse_use_specs,
    round_up,
)


def _c(name: str = "c", requests: dict[str, str] | None = None,
       limits: dict[str, str] | None = None) -> V1Container:
    return V1Container(name=name, image="nginx",
                       resources=V1ResourceRequirements(requests=requests, limits=limits))


@pytest.mark.parametrize(("cpu", "mem", "expected"), [
    (0, 0, (0.25, 0.5)),
    (0.1, 0.1, (0.25, 0.5)),
    (0.25, 1, (0.25, 1)),
    (0.25, 1.5, (0.5, 2)),
    (0.3, 0.5, (0.5, 1)),
    (1, 3, (1, 4)),
    (1, 9, (2, 16)),
    (2, 0.5, (2, 1)),
    (3, 3, (4, 4)),
    (9, 1, (12, 12)),
    (8, 65, (12, 96)),
    (33, 1, (52, 96)),
    (52, 384, (52, 384)),
    (53, 100, (64, 128)),
    (64, 512, (64, 512)),
])
def test_round_up_table(cpu: float, mem: float, expected: tuple[float, float]) -> None:
    assert round_up(cpu, mem) == expected


@pytest.mark.parametrize(("cpu", "mem"), [(65, 1), (64, 513), (1, 1024)])
def test_too_large_is_invalid_input(cpu: float, mem: float) -> None:
    with pytest.raises(InvalidInput) as info:
        round_up(cpu, mem)
    assert "exceeds every ECI spec" in str(info.value)
    assert info.value.thing == "pod size"


def test_table_matches_spec_and_is_ordered() -> None:
    assert len(SUPPORTED_SPECS) == sum(len(v) for v in SPEC_TABLE.values()) == 44
    assert list(SUPPORTED_SPECS) == sorted(SUPPORTED_SPECS)
    assert (52.0, 96.0) in SUPPORTED_SPECS and (52.0, 64.0) not in SUPPORTED_SPECS


@pytest.mark.parametrize(("text", "value"), [
    ("500m", 0.5), ("1", 1), ("1.5", 1.5), ("512Mi", 512 * 2**20), ("1Gi", 2**30),
    ("1G", 10**9), ("1e3", 1000), ("128974848", 128974848), ("100k", 100000),
])
def test_parse_quantity(text: str, value: float) -> None:
    assert float(parse_quantity(text)) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "1.5.5", "-1", "1Qi", ""])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_quantity(text, "container x cpu")


@pytest.mark.parametrize(("containers", "inits", "expected"), [
    # nothing set: 2 vCPU / 4 GiB
    ([_c()], [], SpecChoice(2.0, 4.0)),
    # requests summed, rounded up
    ([_c("a", {"cpu": "500m", "memory": "512Mi"}), _c("b", {"cpu": "500m", "memory": "1Gi"})],
     [], SpecChoice(1.0, 2.0)),
    # limits win over requests per container
    ([_c("a", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "2", "memory": "3Gi"})], [],
     SpecChoice(2.0, 4.0)),
    # only memory set: smallest cpu with that memory
    ([_c("a", {"memory": "6Gi"})], [], SpecChoice(1.0, 8.0)),
    # an init container larger than the app sum counts (Kubernetes' effective request)
    ([_c("a", {"cpu": "1", "memory": "2Gi"})], [_c("i", {"cpu": "4", "memory": "1Gi"})],
     SpecChoice(4.0, 2.0)),
    # init smaller than the sum: the sum counts
    ([_c("a", {"cpu": "1"}), _c("b", {"cpu": "1"})], [_c("i", {"cpu": "1"})],
     SpecChoice(2.0, 1.0)),
])
def test_choose_spec_from_resources(containers: list[V1Container], inits: list[V1Container],
                                    expected: SpecChoice) -> None:
    assert choose_spec(containers, inits) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("2-4Gi", SpecChoice(cpu=2.0, memory=4.0)),
    ("0.5-1Gi", SpecChoice(cpu=0.5, memory=1.0)),
    ("ecs.c6.large", SpecChoice(instance_type="ecs.c6.large")),
    ("2-4Gi, ecs.c6.large,4-8Gi", SpecChoice(instance_type="2-4Gi,ecs.c6.large,4-8Gi")),
])
def test_use_specs_wins(value: str, expected: SpecChoice) -> None:
    big = [_c("a", {"cpu": "16", "memory": "64Gi"})]
    assert choose_spec(big, [], value) == expected


@pytest.mark.parametrize("value", ["", "2-3Gi", "2-4G", "c6.large", "2-4Gi,x",
                                   ",".join(["2-4Gi"] * 6)])
def test_use_specs_rejects(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_use_specs(value)
    assert "eci-use-specs" in str(info.value)


def test_gpu_without_use_specs_is_refused_naming_container_and_resource() -> None:
    gpu = [_c("train", {"cpu": "4"}, {"cpu": "4", "nvidia.com/gpu": "1"})]
    with pytest.raises(InvalidInput) as info:
        choose_spec(gpu, [])
    assert "container train resource nvidia.com/gpu" in str(info.value)
    assert "eci-use-specs" in str(info.value)
    # Named with a GPU instance type it is the user's choice, and goes through.
    assert choose_spec(gpu, [], "ecs.gn6i-c4g1.xlarge") == SpecChoice(
        instance_type="ecs.gn6i-c4g1.xlarge")


def test_ephemeral_storage_and_hugepages_are_not_extended_resources() -> None:
    c = _c("a", {"cpu": "1", "ephemeral-storage": "1Gi", "hugepages-2Mi": "0"})
    assert choose_spec([c], []) == SpecChoice(1.0, 2.0)
