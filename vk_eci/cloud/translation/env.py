"""A container's environment as the kubelet would make it, for ECI's ``EnvironmentVar`` list.

Order and precedence follow the kubelet: service variables (when ``enableServiceLinks``), then
``envFrom`` in order, then ``env`` in order, a later definition replacing an earlier one in place.
``$(VAR)`` references in ``env`` values are expanded against what is defined before them (``$$``
escapes), as Kubernetes does; command and args are expanded against the whole environment.

ECI resolves only ``status.podIP`` itself (``FieldRef``); every other field path is known when
the pod is created, so the node puts the value in directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.specs import parse_quantity
from vk_eci.cloud.translation.bounds import (
    MAX_STRING,
    MAX_STRING_WHY,
    Budget,
    check_string,
    pod_budget,
    size_of,
)
from vk_eci.cloud.translation.context import PodWarning, TranslateContext, Warnings
from vk_eci.cloud.translation.missing import absent

ECI_FIELD_PATHS = {"status.podIP": "status.podIP",
                   # ECI runs one pod per instance: the "host" address is the pod's own.
                   "status.hostIP": "status.podIP", "status.podIPs": "status.podIP"}
_LABEL_PATH = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


@dataclass(frozen=True)
class EnvVar:
    """One variable: a literal ``value`` or an ECI ``field_path`` (status.podIP)."""

    name: str
    value: str | None = None
    field_path: str | None = None


def expand(text: str, lookup: Callable[[str], str | None], thing: str = "value") -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as written, ``$$`` is ``$``.

    The result is measured while it is built: past
    :data:`~vk_eci.cloud.translation.bounds.MAX_STRING`
    characters it is :class:`InvalidInput` naming ``thing``, before a larger string exists."""
    parts: list[str] = []
    length, start = 0, 0
    for m in _REF.finditer(text):
        value = "$" if m.group(0) == "$$" else lookup(m.group(1))
        for piece in (text[start:m.start()], m.group(0) if value is None else value):
            length += len(piece)
            if length > MAX_STRING:
                raise InvalidInput(thing, f"expands to more than {MAX_STRING} bytes "
                                          f"({MAX_STRING_WHY})")
            parts.append(piece)
        start = m.end()
    parts.append(text[start:])
    return "".join(parts)


def field_value(pod: Any, path: str, container: str) -> str:
    """The value of a downward-API field path known at creation time."""
    meta, spec = pod.metadata, pod.spec
    simple = {
        "metadata.name": meta.name, "metadata.namespace": meta.namespace or "default",
        "metadata.uid": meta.uid, "spec.nodeName": spec.node_name,
        "spec.serviceAccountName": spec.service_account_name or "default",
    }
    if path in simple:
        return str(simple[path] or "")
    m = _LABEL_PATH.match(path)
    if m:
        source = (meta.labels if m.group(1) == "labels" else meta.annotations) or {}
        return str(source.get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        source = (meta.labels if path == "metadata.labels" else meta.annotations) or {}
        return "\n".join(f'{k}="{_escape(v)}"' for k, v in sorted(source.items()))
    raise InvalidInput(f"container {container} field path {path!r}",
                       "not a field ECI or the node can provide")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resource_value(containers: list[Any], container: str, ref: Any,
                   group_cpu: float | None, group_memory: float | None) -> str:
    """A ``resourceFieldRef`` value: the container's limit (else the instance's size) / divisor,
    rounded up, as the kubelet computes it."""
    target = ref.container_name or container
    match = next((c for c in containers if c.name == target), None)
    if match is None:
        raise InvalidInput(f"container {container} resourceFieldRef",
                           f"no container named {target!r}")
    res = match.resources
    limits = (res.limits if res is not None else None) or {}
    requests = (res.requests if res is not None else None) or {}
    resource = ref.resource
    kind, _, name = resource.partition(".")
    divisor = parse_quantity(ref.divisor or "1", f"container {container} divisor")
    if divisor == 0:
        raise InvalidInput(f"container {container} resourceFieldRef", "divisor is zero")
    source = limits if kind == "limits" else requests if kind == "requests" else None
    if source is None or name not in ("cpu", "memory", "ephemeral-storage"):
        raise InvalidInput(f"container {container} resourceFieldRef",
                           f"resource {resource!r} is not supported")
    if name in source:
        amount = parse_quantity(source[name], f"container {container} {resource}")
    elif name == "cpu" and group_cpu is not None:
        amount = Decimal(str(group_cpu))
    elif name == "memory" and group_memory is not None:
        amount = Decimal(str(group_memory)) * Decimal(2) ** 30
    else:
        amount = Decimal(0)
    return str(math.ceil(amount / divisor))


def _env_from(container: Any, ctx: TranslateContext,
              notes: Warnings) -> Iterator[tuple[str, str, str]]:
    """(variable name, value, source) of each key of the container's ``envFrom`` sources."""
    name = container.name
    for env_from in container.env_from or []:
        prefix = env_from.prefix or ""
        items: Mapping[str, str]
        if env_from.config_map_ref is not None:
            ref = env_from.config_map_ref
            cm = ctx.config_maps.get(ref.name)
            if cm is None:
                absent(ctx, "config map", ref.name, f"envFrom of container {name}",
                       optional=bool(ref.optional), notes=notes)
                continue
            items, source = cm.data, f"config map {ref.name}"
        elif env_from.secret_ref is not None:
            ref = env_from.secret_ref
            secret = ctx.secrets.get(ref.name)
            if secret is None:
                absent(ctx, "secret", ref.name, f"envFrom of container {name}",
                       optional=bool(ref.optional), notes=notes)
                continue
            items = {k: v.decode("utf-8", "replace") for k, v in secret.data.items()}
            source = f"secret {ref.name}"
        else:
            continue
        for key, value in items.items():
            yield prefix + key, value, source


def _env_size(var: EnvVar) -> int:
    # As execve counts it: NAME=value and its terminating NUL.
    return size_of(var.name) + 2 + (size_of(var.value) if var.value is not None else 0)


def container_env(pod: Any, container: Any, ctx: TranslateContext,
                  group_cpu: float | None, group_memory: float | None,
                  notes: Warnings, budget: Budget | None = None) -> list[EnvVar]:
    """The environment of ``container`` (see the module docstring); what it skips is added to
    ``notes``. Each variable is measured as it is defined and charged to ``budget`` (by default
    one for this container alone)."""
    name = container.name
    env: dict[str, EnvVar] = {}
    counted = budget if budget is not None else pod_budget(f"(container {name})")

    def put(var: EnvVar) -> None:
        thing = f"container {name} env {var.name}"
        size = _env_size(var)
        check_string(thing, size)
        old = env.get(var.name)
        if old is not None:
            counted.release(_env_size(old))
        counted.add(thing, size)
        env[var.name] = var

    links = pod.spec.enable_service_links is not False
    if links:
        for key, value in ctx.service_env.items():
            put(EnvVar(key, value))
    invalid: list[str] = []
    for var_name, value, source in _env_from(container, ctx, notes):
        # The kubelet skips keys that are not valid variable names, and says so.
        if _ENV_NAME.match(var_name):
            put(EnvVar(var_name, value))
        else:
            invalid.append(f"{var_name} from {source}")
    if invalid:
        notes.append(PodWarning("InvalidEnvironmentVariableNames",
                                f"container {name}: skipped invalid environment variable "
                                f"names: {'; '.join(invalid)}"))
    all_containers = list(pod.spec.init_containers or []) + list(pod.spec.containers or [])

    def known(var: str) -> str | None:
        found = env.get(var)
        return found.value if found is not None else None

    for var in container.env or []:
        src = var.value_from
        if src is None:
            put(EnvVar(var.name, expand(var.value or "", known,
                                        f"container {name} env {var.name}")))
            continue
        if src.field_ref is not None:
            path = src.field_ref.field_path
            if path in ECI_FIELD_PATHS:
                put(EnvVar(var.name, field_path=ECI_FIELD_PATHS[path]))
            else:
                put(EnvVar(var.name, field_value(pod, path, name)))
        elif src.resource_field_ref is not None:
            put(EnvVar(var.name, resource_value(
                all_containers, name, src.resource_field_ref, group_cpu, group_memory)))
        elif src.secret_key_ref is not None:
            resolved = _key_ref(ctx, "secret", src.secret_key_ref, name, var.name, notes)
            if resolved is not None:
                put(EnvVar(var.name, resolved))
        elif src.config_map_key_ref is not None:
            resolved = _key_ref(ctx, "config map", src.config_map_key_ref, name, var.name,
                                notes)
            if resolved is not None:
                put(EnvVar(var.name, resolved))
        else:
            raise InvalidInput(f"container {name} env {var.name}", "unsupported valueFrom")
    return list(env.values())


def _key_ref(ctx: TranslateContext, kind: str, ref: Any, container: str,
             var: str, notes: Warnings) -> str | None:
    if kind == "secret":
        secret = ctx.secrets.get(ref.name)
        data: Mapping[str, str] | None = None if secret is None else {
            k: v.decode("utf-8", "replace") for k, v in secret.data.items()}
    else:
        cm = ctx.config_maps.get(ref.name)
        data = None if cm is None else cm.data
    if data is None or ref.key not in data:
        absent(ctx, kind, ref.name, f"env {var} of container {container}",
               optional=bool(ref.optional), notes=notes,
               key=None if data is None else ref.key)
        return None
    return data[ref.key]
