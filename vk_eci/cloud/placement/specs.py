"""ECI instance sizes: the supported spec table, pod sizing and ``eci-use-specs``.

A pod's size is, per resource, the Kubernetes effective value: the larger of the sum over app
containers and the largest init container, where each container counts its limit when set, else
its request. When neither cpu nor memory is set anywhere the pod gets 2 vCPU / 4 GiB. The result
is rounded up to the smallest supported spec that holds it (fewest vCPU first, then least memory);
a pod larger than every spec is :class:`InvalidInput`.

``k8s.aliyun.com/eci-use-specs`` wins over all that: a comma-separated list tried in order by ECI.
A single ``<cpu>-<mem>Gi`` entry becomes the group's ``Cpu``/``Memory``; any other list (ECS types
like ``ecs.c6.large``, or several entries) is passed as ``InstanceType``, comma-joined, which is how
ECI takes "try these in order".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, Overflow, localcontext
from typing import Any

from vk_eci.cloud.api.errors import InvalidInput

USE_SPECS_ANNOTATION = "k8s.aliyun.com/eci-use-specs"
# The older single-type form, still in Alibaba's GPU and reserved-instance examples.
INSTANCE_TYPE_ANNOTATION = "k8s.aliyun.com/eci-instance-type"
DEFAULT_CPU = 2.0
DEFAULT_MEMORY_GIB = 4.0
MAX_INSTANCE_TYPES = 5  # ECI accepts at most five InstanceType entries

# vCPU → supported memory sizes in GiB (ECI documentation; docs/BEHAVIOUR.md §9).
SPEC_TABLE: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1), 0.5: (1, 2), 1: (2, 4, 8), 2: (1, 2, 4, 8, 16), 4: (2, 4, 8, 16, 32),
    8: (4, 8, 16, 32, 64), 12: (12, 24, 48, 96), 16: (16, 32, 64, 128), 24: (24, 48, 96, 192),
    32: (32, 64, 128, 256), 52: (96, 192, 384), 64: (128, 256, 512),
}
SUPPORTED_SPECS: tuple[tuple[float, float], ...] = tuple(
    (float(cpu), float(mem)) for cpu in sorted(SPEC_TABLE) for mem in SPEC_TABLE[cpu])

_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_CPU_MEM = re.compile(r"^([0-9]+(?:\.[0-9]+)?)-([0-9]+(?:\.[0-9]+)?)Gi$")
_ECS_TYPE = re.compile(r"^ecs\.[a-z0-9-]+(?:\.[a-z0-9-]+)+$")
GIB = Decimal(2) ** 30
_QUANTITY_MAX = Decimal(2) ** 63 - 1  # Kubernetes keeps a quantity's value in an int64
_NANO = Decimal("1e-9")


def parse_quantity(value: Any, what: str = "quantity") -> Decimal:
    """A Kubernetes quantity (``500m``, ``1.5``, ``512Mi``, ``1e3``) as a Decimal."""
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        raise InvalidInput(what, f"{text!r} is not a Kubernetes quantity")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as e:
        raise InvalidInput(what, f"{text!r} is not a Kubernetes quantity") from e
    if number < 0:
        raise InvalidInput(what, f"{text!r} is negative")
    with localcontext() as wide:
        wide.traps[Overflow] = False  # "1e999999999Ki" is Infinity here, refused just below
        amount = number * _SUFFIX[m.group(2) or ""]
    # Found by fuzzing: "1e999" passed, and later integer division of it raised
    # decimal.DivisionImpossible instead of a named error; "1e999999999Ki" raised Overflow.
    if amount > _QUANTITY_MAX:
        raise InvalidInput(what, f"{text!r} is larger than any quantity Kubernetes stores")
    if number > 0 and amount < _NANO:
        # Kubernetes rounds a quantity up to its nano precision. Found by fuzzing: a divisor
        # of "1e-9999" made a resourceFieldRef value of 10,000 digits (str() refused it).
        return _NANO
    return amount


@dataclass(frozen=True)
class Resources:
    cpu: float = 0.0  # vCPU
    memory: float = 0.0  # GiB


def container_resources(container: Any) -> Resources:
    """What one container counts for: its limit per resource when set, else its request."""
    res = getattr(container, "resources", None)
    limits = (getattr(res, "limits", None) or {}) if res is not None else {}
    requests = (getattr(res, "requests", None) or {}) if res is not None else {}
    name = getattr(container, "name", "?")
    cpu = limits.get("cpu", requests.get("cpu"))
    mem = limits.get("memory", requests.get("memory"))
    return Resources(
        cpu=float(parse_quantity(cpu, f"container {name} cpu")) if cpu is not None else 0.0,
        memory=float(parse_quantity(mem, f"container {name} memory") / GIB)
        if mem is not None else 0.0)


def pod_resources(containers: Iterable[Any], init_containers: Iterable[Any]) -> Resources:
    """Kubernetes' effective pod size: max(sum of app containers, largest init container)."""
    apps = [container_resources(c) for c in containers]
    inits = [container_resources(c) for c in init_containers]
    cpu = max([sum(r.cpu for r in apps)] + [r.cpu for r in inits])
    mem = max([sum(r.memory for r in apps)] + [r.memory for r in inits])
    return Resources(cpu, mem)


def round_up(cpu: float, memory: float) -> tuple[float, float]:
    """The smallest supported (vCPU, GiB) holding ``cpu`` and ``memory``."""
    eps = 1e-9
    for spec_cpu, spec_mem in SUPPORTED_SPECS:
        if spec_cpu + eps >= cpu and spec_mem + eps >= memory:
            return spec_cpu, spec_mem
    largest_cpu = max(SPEC_TABLE)
    raise InvalidInput(
        "pod size", f"{_fmt(cpu)} vCPU / {_fmt(memory)} GiB exceeds every ECI spec "
        f"(largest {_fmt(largest_cpu)} vCPU / {_fmt(max(SPEC_TABLE[largest_cpu]))} GiB)")


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class SpecChoice:
    """What goes on the request: either ``cpu``/``memory`` or ``instance_type``."""

    cpu: float | None = None
    memory: float | None = None
    instance_type: str | None = None


def parse_use_specs(value: str) -> list[str]:
    """Validate an ``eci-use-specs`` value; entries normalised (``2-4Gi``, ``ecs.c6.large``)."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise InvalidInput(f"annotation {USE_SPECS_ANNOTATION}", f"{value!r} lists no spec")
    out: list[str] = []
    for entry in entries:
        m = _CPU_MEM.match(entry)
        if m:
            cpu, mem = float(m.group(1)), float(m.group(2))
            if mem not in SPEC_TABLE.get(cpu, ()):
                raise InvalidInput(f"annotation {USE_SPECS_ANNOTATION}",
                                   f"{entry!r} is not a supported ECI spec")
            out.append(f"{_fmt(cpu)}-{_fmt(mem)}Gi")
        elif _ECS_TYPE.match(entry):
            out.append(entry)
        else:
            raise InvalidInput(f"annotation {USE_SPECS_ANNOTATION}",
                               f"{entry!r} is neither <cpu>-<mem>Gi nor an ECS instance type")
    if len(out) > MAX_INSTANCE_TYPES:
        raise InvalidInput(f"annotation {USE_SPECS_ANNOTATION}",
                           f"{len(out)} specs given, ECI tries at most {MAX_INSTANCE_TYPES}")
    return out


# Resources a cpu/memory spec provides; anything else (GPUs, other extended resources) needs an
# instance type that has it, named with eci-use-specs.
_SIZED_BY_SPEC = frozenset({"cpu", "memory", "ephemeral-storage"})
GPU_RESOURCE = "nvidia.com/gpu"


def container_gpus(container: Any) -> int:
    """GPUs one container asks for (its ``nvidia.com/gpu`` limit, else request): ECI's ``Gpu``."""
    res = getattr(container, "resources", None)
    limits = (getattr(res, "limits", None) or {}) if res is not None else {}
    requests = (getattr(res, "requests", None) or {}) if res is not None else {}
    raw = limits.get(GPU_RESOURCE, requests.get(GPU_RESOURCE))
    if raw is None:
        return 0
    what = f"container {getattr(container, 'name', '?')} {GPU_RESOURCE}"
    count = parse_quantity(raw, what)
    if count != count.to_integral_value():
        raise InvalidInput(what, f"{raw!r} is not a whole number of GPUs")
    return int(count)


def _refuse_extended_resources(containers: Sequence[Any]) -> None:
    """A GPU (or other extended resource) the spec table cannot give must not be dropped
    silently: the pod would start on an instance without it."""
    for container in containers:
        res = getattr(container, "resources", None)
        for kind in ("limits", "requests"):
            for resource in (getattr(res, kind, None) or {}) if res is not None else {}:
                if resource not in _SIZED_BY_SPEC and not resource.startswith("hugepages-"):
                    raise InvalidInput(
                        f"container {getattr(container, 'name', '?')} resource {resource}",
                        f"cannot be sized from cpu/memory; name an ECI instance type that has it "
                        f"in the {USE_SPECS_ANNOTATION} annotation")


def use_specs_of(annotations: Mapping[str, str]) -> str | None:
    """What sizes the pod: ``eci-use-specs``, else the older ``eci-instance-type`` (an ECS type;
    a cpu-mem value or both annotations at once are InvalidAnnotation problems, see
    placement.annotations)."""
    return annotations.get(USE_SPECS_ANNOTATION) or annotations.get(INSTANCE_TYPE_ANNOTATION)


def choose_spec(containers: Sequence[Any], init_containers: Sequence[Any],
                use_specs: str | None = None) -> SpecChoice:
    """The size of a pod's container group (see the module docstring)."""
    if use_specs is not None:
        entries = parse_use_specs(use_specs)
        gpus = sum(container_gpus(c) for c in containers)
        if gpus and all(_CPU_MEM.match(e) for e in entries):
            # A <cpu>-<mem>Gi spec never has a GPU: the pod would start without one.
            raise InvalidInput(f"annotation {USE_SPECS_ANNOTATION}",
                               f"{use_specs!r} names no instance type, but the pod asks for "
                               f"{gpus} {GPU_RESOURCE}: name a GPU type such as "
                               "ecs.gn6i-c4g1.xlarge")
        if len(entries) == 1 and (m := _CPU_MEM.match(entries[0])):
            return SpecChoice(cpu=float(m.group(1)), memory=float(m.group(2)))
        return SpecChoice(instance_type=",".join(entries))
    _refuse_extended_resources([*init_containers, *containers])
    need = pod_resources(containers, init_containers)
    if need.cpu == 0 and need.memory == 0:
        return SpecChoice(cpu=DEFAULT_CPU, memory=DEFAULT_MEMORY_GIB)
    cpu, mem = round_up(need.cpu, need.memory)
    return SpecChoice(cpu=cpu, memory=mem)
