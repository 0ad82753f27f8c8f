"""``eci-instance-family`` / ``eci-instance-generation`` → ECS instance types for ``InstanceType``.

CreateContainerGroup has no family parameter: ECI's own virtual node turns these annotations into
instance types. vk-eci does the same from ECS's naming rule: a family ``ecs.<letter><generation>``
has a fixed memory:vCPU ratio by its letter (``c`` 2, ``g`` 4, ``r`` 8 GiB per vCPU) and sizes
named by vCPU (``large`` 2, ``xlarge`` 4, ``<n>xlarge`` 4n). For the pod's vCPU/memory each
family gives its smallest type that holds the pod; a generation stands for its ``c``, ``g`` and
``r`` families. At most five types are sent (ECI's limit), in the order given.
"""

from __future__ import annotations

import re

from vk_eci.cloud.api.errors import InvalidInput

RATIOS = {"c": 2, "g": 4, "r": 8}  # GiB per vCPU of general families by their letter
SIZES = ((2, "large"), (4, "xlarge"), (8, "2xlarge"), (12, "3xlarge"), (16, "4xlarge"),
         (24, "6xlarge"), (32, "8xlarge"), (64, "16xlarge"))
FAMILY = re.compile(r"ecs\.([cgr])([0-9]+)([a-z]*)")
MAX_TYPES = 5
DEFAULT_GENERATIONS = ("7", "6", "5")  # x86 generations ECI offers c/g/r families of


def _size(instance_type: str) -> tuple[int, int]:
    """(vCPU, GiB) of a c/g/r type, to put the smallest first (stable: newest first)."""
    family, _, size = instance_type.rpartition(".")
    m = FAMILY.fullmatch(family)
    vcpu = next((v for v, name in SIZES if name == size), 0)
    return vcpu, vcpu * (RATIOS[m.group(1)] if m else 0)


def _one_form(items: list[str], what: str) -> None:
    """ECI's docs specify (``ecs.c6``) or exclude (``-ecs.c6``), never both in one list."""
    excluded = [i.startswith("-") for i in items]
    if any(excluded) and not all(excluded):
        raise ValueError(f"specify {what} or exclude them (each with a leading -), not both")


def parse_families(value: str) -> list[str]:
    """Validate ``ecs.c6,ecs.g6`` or the exclude form ``-ecs.c6,-ecs.c5``: ValueError with the
    reason if an entry is no such family."""
    items = [i.strip() for i in value.split(",") if i.strip()]
    if not items:
        raise ValueError("expected ECS instance families such as ecs.c6,ecs.g6")
    for item in items:
        if not FAMILY.fullmatch(item.removeprefix("-").strip()):
            raise ValueError(f"{item!r} is not a c, g or r ECS family (ecs.c6, ecs.g7, …)")
    _one_form(items, "families")
    return [i if not i.startswith("-") else "-" + i[1:].strip() for i in items]


def parse_generations(value: str) -> list[str]:
    """``6,5`` or the exclude form ``-5,-4``."""
    items = [i.strip() for i in value.split(",") if i.strip()]
    # Generation 4 has no c/g/r family: it can only be excluded.
    if not items or any(i not in {"5", "6", "7", "8", "9", "-4", "-5", "-6", "-7", "-8", "-9"}
                        for i in (x.replace(" ", "") for x in items)):
        raise ValueError("expected ECS generations from 5 to 9, e.g. 6,5 (or -5,-4 to exclude)")
    _one_form(items, "generations")
    return [i if not i.startswith("-") else "-" + i[1:].strip() for i in items]


def _generation(family: str) -> str:
    m = FAMILY.fullmatch(family)
    return m.group(2) if m is not None else ""


def _type_for(family: str, cpu: float, memory: float) -> str | None:
    m = FAMILY.fullmatch(family)
    assert m is not None
    ratio = RATIOS[m.group(1)]
    for vcpu, size in SIZES:
        if vcpu >= cpu and vcpu * ratio >= memory:
            return f"{family}.{size}"
    return None


def instance_types(families: list[str], generations: list[str], cpu: float,
                   memory: float) -> str:
    """The ``InstanceType`` list for a pod of ``cpu`` vCPU and ``memory`` GiB. Excluded
    families or generations (``-``) leave the others of the c, g and r families of generations
    7 to 5 (x86), the smallest fitting types first."""
    no_family = {f[1:] for f in families if f.startswith("-")}
    no_generation = {g[1:] for g in generations if g.startswith("-")}
    if no_family or no_generation:
        keep = [g for g in generations if not g.startswith("-")] or \
            [g for g in DEFAULT_GENERATIONS if g not in no_generation]
        pool = [f"ecs.{letter}{g}" for g in keep for letter in RATIOS]
        chosen = [f for f in families if not f.startswith("-")]
        wanted = [f for f in (chosen or pool)
                  if f not in no_family and _generation(f) not in no_generation]
        fits = [t for t in (_type_for(f, cpu, memory) for f in wanted) if t is not None]
        fits.sort(key=_size)
        if fits:
            return ",".join(list(dict.fromkeys(fits))[:MAX_TYPES])
        raise InvalidInput("annotations eci-instance-family/eci-instance-generation",
                           f"no type outside the excluded ones holds {cpu:g} vCPU / "
                           f"{memory:g} GiB")
    wanted = list(families)
    if generations:
        if wanted:
            # Both given: the families of those generations only.
            wanted = [f for f in wanted if _generation(f) in generations]
        else:
            wanted = [f"ecs.{letter}{g}" for g in generations for letter in RATIOS]
    types = [t for t in (_type_for(f, cpu, memory) for f in wanted) if t is not None]
    if not types:
        raise InvalidInput("annotations eci-instance-family/eci-instance-generation",
                           f"no type of {', '.join(wanted) or 'those families'} holds "
                           f"{cpu:g} vCPU / {memory:g} GiB")
    return ",".join(list(dict.fromkeys(types))[:MAX_TYPES])
