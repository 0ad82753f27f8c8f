"""One pod against the policy: the first rule it breaks, named with annotation, value and rule.

The same function decides at admission (the webhook, on the pod's JSON) and at group creation
(the provider, on the typed pod), so a pod admitted before a policy change, or past a webhook
that was down, meets the same answer. Single-tenant mode allows everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement import annotations as ann
from vk_eci.cloud.placement.instance_family import FAMILY, RATIOS, SIZES
from vk_eci.cloud.placement.specs import (
    DEFAULT_CPU,
    DEFAULT_MEMORY_GIB,
    GPU_RESOURCE,
    INSTANCE_TYPE_ANNOTATION,
    USE_SPECS_ANNOTATION,
    container_gpus,
    pod_resources,
    round_up,
    use_specs_of,
)
from vk_eci.cloud.policy.rules import Allow, Policy

SINGLE_TENANT_HINT = ("single-tenant mode (--single-tenant, chart value singleTenant) allows "
                      "every namespace everything")

# annotation -> the allow-list family its comma-separated values are checked against
LISTED: dict[str, str] = {
    ann.RAM_ROLE: "ramRoles", ann.SECURITY_GROUP: "securityGroups", ann.VSWITCH: "vSwitches",
    ann.RESOURCE_GROUP: "resourceGroups", ann.EIP_ID: "eipIds", ann.EIP_ISP: "eipIsps",
    ann.EIP_PACKAGE: "bandwidthPackages", ann.ACR_IDS: "acrInstances",
    ann.ACR_ID: "acrInstances", ann.DATA_CACHE_BUCKET: "dataCacheBuckets",
}
GPU_TYPE = re.compile(r"ecs\.(?:ebm|s|v)?gn[0-9a-z-]*\..+")
_CPU_MEM = re.compile(r"^([0-9]+(?:\.[0-9]+)?)-([0-9]+(?:\.[0-9]+)?)Gi$")
_GPU_VCPU = re.compile(r"-c([0-9]+)g")  # ecs.gn6i-c4g1.xlarge: 4 vCPU


@dataclass(frozen=True)
class PodFacts:
    """What the policy looks at: namespace, annotations, the requested size and GPUs."""

    namespace: str
    annotations: Mapping[str, str]
    cpu: float  # vCPU, Kubernetes' effective pod size (limits over requests)
    memory: float  # GiB
    gpus: int

    @property
    def rounded(self) -> tuple[float, float] | None:
        """The ECI spec its requests round up to (None: larger than any spec)."""
        if self.cpu == 0 and self.memory == 0:
            return DEFAULT_CPU, DEFAULT_MEMORY_GIB
        try:
            return round_up(self.cpu, self.memory)
        except InvalidInput:
            return None


def facts_of(namespace: str, annotations: Mapping[str, str] | None, containers: list[Any],
             init_containers: list[Any]) -> PodFacts:
    """Facts of typed containers (V1Container) or any object with ``.resources``."""
    try:
        need = pod_resources(containers, init_containers)
        gpus = sum(container_gpus(c) for c in containers)
    except InvalidInput:
        need, gpus = pod_resources([], []), 0  # bad quantities are the translation's refusal
    return PodFacts(namespace, dict(annotations or {}), need.cpu, need.memory, gpus)


def facts_of_model(pod: Any) -> PodFacts:
    meta, spec = pod.metadata, pod.spec
    return facts_of(meta.namespace or "default", meta.annotations, list(spec.containers or []),
                    list(spec.init_containers or []))


def _container(raw: Mapping[str, Any]) -> Any:
    res = raw.get("resources") or {}
    return SimpleNamespace(name=raw.get("name", "?"), resources=SimpleNamespace(
        limits=res.get("limits") or {}, requests=res.get("requests") or {}))


def facts_of_json(pod: Mapping[str, Any], namespace: str | None = None) -> PodFacts:
    """Facts of a pod as the API server sends it to an admission webhook."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return facts_of(namespace or meta.get("namespace") or "default", meta.get("annotations"),
                    [_container(c) for c in spec.get("containers") or []],
                    [_container(c) for c in spec.get("initContainers") or []])


@dataclass(frozen=True)
class Denial:
    """The first rule a pod breaks."""

    annotation: str
    value: str
    rule: str
    reason: str
    namespace: str

    def message(self) -> str:
        what = "annotation " if "/" in self.annotation else "pod "
        return (f"{what}{self.annotation}={self.value!r} is not allowed in namespace "
                f"{self.namespace}: rule {self.rule}: {self.reason}")


def evaluate(policy: Policy, pod: PodFacts, namespace_labels: Mapping[str, str] | None = None,
             *, node_gpus: int = 0, single_tenant: bool = False) -> Denial | None:
    """The first rule ``pod`` breaks, or None when the policy allows it."""
    if single_tenant:
        return None
    allow, by = policy.allowed(pod.namespace, namespace_labels)
    for annotation, value, rule, reason in _breaches(allow, pod, node_gpus):
        where = f" (rules applied: {by})" if by else " (no rule applies to this namespace)"
        return Denial(annotation, value, rule, reason + where, pod.namespace)
    return None


Breach = tuple[str, str, str, str]  # annotation, value, rule, reason


def _items(annotation: str, value: str) -> list[str]:
    items = [i.strip() for i in value.split(",") if i.strip()]
    if annotation in (ann.ACR_IDS, ann.ACR_ID):
        return [i.rpartition(":")[2] for i in items]  # <region>:cri-… is the instance cri-…
    return items


def _breaches(allow: Allow, pod: PodFacts, node_gpus: int) -> Iterator[Breach]:
    a = pod.annotations
    for annotation, family in LISTED.items():
        if annotation not in a:
            continue
        allowed = allow.values(family)
        for item in _items(annotation, a[annotation]) or [""]:
            if item not in allowed:
                listed = ", ".join(sorted(allowed)) or "none"
                yield (annotation, a[annotation], family,
                       f"{item!r} is not in the allowed values ({listed})")
                return
    if str(a.get(ann.WITH_EIP, "")).strip().lower() == "true" and not allow.eip_create:
        yield ann.WITH_EIP, a[ann.WITH_EIP], "eipCreate", "creating an EIP is not allowed"
        return
    if ann.EIP_BANDWIDTH in a:
        raw = a[ann.EIP_BANDWIDTH]
        if not raw.strip().isdigit() or int(raw) > allow.eip_max_bandwidth:
            yield (ann.EIP_BANDWIDTH, raw, "eipMaxBandwidth",
                   f"at most {allow.eip_max_bandwidth} Mbit/s allowed")
            return
    yield from _size_breaches(allow, pod, node_gpus)


def _type_size(entry: str) -> tuple[float, float] | None:
    """(vCPU, GiB) of a ``<cpu>-<mem>Gi`` spec or a c/g/r ECS type; None when unknown."""
    m = _CPU_MEM.match(entry)
    if m:
        return float(m.group(1)), float(m.group(2))
    family, _, size = entry.rpartition(".")
    fm = FAMILY.fullmatch(family)
    vcpu = dict((s, c) for c, s in SIZES).get(size)
    if fm is None or vcpu is None:
        return None
    return float(vcpu), float(vcpu * RATIOS[fm.group(1)])


def _size_breaches(allow: Allow, pod: PodFacts, node_gpus: int) -> Iterator[Breach]:
    rounded = pod.rounded
    specs = use_specs_of(pod.annotations)
    key = (USE_SPECS_ANNOTATION if USE_SPECS_ANNOTATION in pod.annotations
           else INSTANCE_TYPE_ANNOTATION)
    sizes: list[tuple[str, str, float, float]] = []  # annotation, value, vCPU, GiB
    if specs is None and rounded is not None:
        sizes.append(("resources", f"{pod.cpu:g} vCPU / {pod.memory:g} GiB", *rounded))
    for entry in (e.strip() for e in (specs or "").split(",") if e.strip()):
        if GPU_TYPE.fullmatch(entry):
            if entry not in allow.values("gpuTypes"):
                yield key, entry, "gpuTypes", "this GPU type is not allowed here"
                return
            if pod.gpus == 0:
                yield (key, entry, "gpuRequest",
                       f"a GPU instance type needs a {GPU_RESOURCE} request")
                return
            if node_gpus <= 0:
                yield key, entry, "nodeGpus", "this node has no GPUs (--gpu 0)"
                return
            continue
        size = _type_size(entry)
        within = size is not None and rounded is not None and \
            size[0] <= rounded[0] + 1e-9 and size[1] <= rounded[1] + 1e-9
        if not within and entry not in allow.values("instanceTypes"):
            have = f"{rounded[0]:g} vCPU / {rounded[1]:g} GiB" if rounded else "none"
            yield (key, entry, "instanceTypes",
                   f"larger than the pod's requests round up to ({have}) or of unknown "
                   "size, and not in the allowed instance types")
            return
        if size is not None:
            sizes.append((key, entry, *size))
    for annotation, value, cpu, memory in sizes:
        if allow.max_cpu is not None and cpu > allow.max_cpu + 1e-9:
            yield annotation, value, "maxCpu", f"{cpu:g} vCPU exceeds {allow.max_cpu:g}"
            return
        if allow.max_memory is not None and memory > allow.max_memory + 1e-9:
            yield annotation, value, "maxMemory", f"{memory:g} GiB exceeds {allow.max_memory:g}"
            return
