"""The ``policy`` of the ECI profile: per-namespace allow-lists (docs/PROFILE.md).

Every identity and network annotation family is denied unless a rule that applies to the pod's
namespace lists the exact value; sizes are bounded by a rule's ``maxCpu``/``maxMemory`` and by
the pod's own requests unless a rule names the spec. A namespace gets the union of the rules
that match it (by name or by a namespace label selector).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# family (the allow-list's key) -> what it holds, for messages and docs/PROFILE.md
LIST_FAMILIES: dict[str, str] = {
    "ramRoles": "RAM role names",
    "securityGroups": "security group ids",
    "vSwitches": "vSwitch ids",
    "resourceGroups": "resource group ids",
    "eipIds": "EIP ids to bind",
    "eipIsps": "EIP line types",
    "bandwidthPackages": "common bandwidth package ids",
    "acrInstances": "ACR Enterprise instance ids",
    "dataCacheBuckets": "data-cache OSS buckets",
    "instanceTypes": "ECS instance types or <cpu>-<mem>Gi specs beyond the pod's requests",
    "gpuTypes": "GPU ECS instance types",
}


class PolicyError(ValueError):
    """The profile's policy cannot be read: names the field and the reason."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector (matchLabels + matchExpressions); empty matches all."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        have = labels or {}
        if any(have.get(k) != v for k, v in self.match_labels.items()):
            return False
        for r in self.expressions:
            present = r.key in have
            ok = {"In": present and have.get(r.key) in r.values,
                  "NotIn": not present or have.get(r.key) not in r.values,
                  "Exists": present, "DoesNotExist": not present}[r.operator]
            if not ok:
                return False
        return True


def parse_selector(raw: Any, where: str) -> LabelSelector:
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected a label selector (matchLabels/matchExpressions)")
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping):
        raise PolicyError(f"{where}.matchLabels: expected a mapping")
    reqs = []
    for i, e in enumerate(raw.get("matchExpressions") or []):
        op = e.get("operator") if isinstance(e, Mapping) else None
        if op not in ("In", "NotIn", "Exists", "DoesNotExist") or not e.get("key"):
            raise PolicyError(f"{where}.matchExpressions[{i}]: needs key and an operator of "
                              "In, NotIn, Exists, DoesNotExist")
        reqs.append(Requirement(str(e["key"]), op, tuple(str(v) for v in e.get("values") or ())))
    return LabelSelector({str(k): str(v) for k, v in labels.items()}, tuple(reqs))


@dataclass(frozen=True)
class Allow:
    """What a rule allows: exact values per family, EIP creation, size bounds."""

    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    eip_create: bool = False  # k8s.aliyun.com/eci-with-eip=true
    eip_max_bandwidth: int = 0  # Mbit/s of an auto-created EIP (0: none)
    max_cpu: float | None = None  # vCPU per pod; None: no bound
    max_memory: float | None = None  # GiB per pod

    def values(self, family: str) -> frozenset[str]:
        return self.lists.get(family, frozenset())


def merge(allows: list[Allow]) -> Allow:
    """The union of several rules' allowances (the largest bound wins; None is unbounded)."""
    lists: dict[str, frozenset[str]] = {}
    for a in allows:
        for fam, vals in a.lists.items():
            lists[fam] = lists.get(fam, frozenset()) | vals

    def most(values: list[float | None]) -> float | None:
        return None if not values or None in values else max(v for v in values if v is not None)

    return Allow(lists, any(a.eip_create for a in allows),
                 max((a.eip_max_bandwidth for a in allows), default=0),
                 most([a.max_cpu for a in allows]), most([a.max_memory for a in allows]))


@dataclass(frozen=True)
class Rule:
    """Applies to the namespaces named, or matched by ``namespace_selector``."""

    name: str
    namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector | None = None
    allow: Allow = field(default_factory=Allow)

    def applies(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        if namespace in self.namespaces:
            return True
        return self.namespace_selector is not None and self.namespace_selector.matches(labels)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()

    def allowed(self, namespace: str, labels: Mapping[str, str] | None) -> tuple[Allow, str]:
        """What ``namespace`` may use, and the names of the rules that said so."""
        hits = [r for r in self.rules if r.applies(namespace, labels)]
        return merge([r.allow for r in hits]), ", ".join(r.name for r in hits)


def _number(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise PolicyError(f"{where}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise PolicyError(f"{where}: must be positive")
    return value


def _allow(raw: Any, where: str) -> Allow:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected a mapping of allow-lists")
    known = {*LIST_FAMILIES, "eipCreate", "eipMaxBandwidth", "maxCpu", "maxMemory"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(known))})")
    lists: dict[str, frozenset[str]] = {}
    for fam in LIST_FAMILIES:
        vals = raw.get(fam) or []
        if isinstance(vals, str) or not isinstance(vals, list):
            raise PolicyError(f"{where}.{fam}: expected a list of exact values")
        lists[fam] = frozenset(str(v).strip() for v in vals)
    bandwidth = _number(raw.get("eipMaxBandwidth"), f"{where}.eipMaxBandwidth")
    return Allow(lists, bool(raw.get("eipCreate", False)), int(bandwidth or 0),
                 _number(raw.get("maxCpu"), f"{where}.maxCpu"),
                 _number(raw.get("maxMemory"), f"{where}.maxMemory"))


def parse_policy(raw: Any) -> Policy:
    """``{rules: [{name, namespaces, namespaceSelector, allow}]}`` → :class:`Policy`."""
    if raw is None:
        return Policy()
    if not isinstance(raw, Mapping):
        raise PolicyError("policy: expected a mapping with rules")
    rules = []
    for i, r in enumerate(raw.get("rules") or []):
        where = f"policy.rules[{i}]"
        if not isinstance(r, Mapping):
            raise PolicyError(f"{where}: expected a mapping")
        names = r.get("namespaces") or []
        if isinstance(names, str) or not isinstance(names, list):
            raise PolicyError(f"{where}.namespaces: expected a list of namespace names")
        selector = (parse_selector(r["namespaceSelector"], f"{where}.namespaceSelector")
                    if "namespaceSelector" in r else None)
        if not names and selector is None:
            raise PolicyError(f"{where}: needs namespaces or a namespaceSelector")
        rules.append(Rule(str(r.get("name") or f"rules[{i}]"),
                          frozenset(str(n) for n in names), selector,
                          _allow(r.get("allow") or {}, f"{where}.allow")))
    return Policy(tuple(rules))
