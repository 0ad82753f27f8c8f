"""The ``eci-profile`` ConfigMap, parsed (docs/PROFILE.md lists its keys against Alibaba's).

Alibaba's keys where they exist: ``selectors`` (a JSON or YAML list of ``{name,
namespaceSelector, objectSelector, effect: {annotations, labels}}``), ``vSwitchIds`` (comma-
separated), ``securityGroupId``, ``enableClusterIp``; ours: ``policy`` (YAML, see
:mod:`vk_eci.cloud.policy.rules`). A profile that cannot be read is reported by key and reason;
the node then keeps the last good one (or the empty, deny-unless-allowed profile).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from vk_eci.cloud.policy.rules import (
    LabelSelector,
    Policy,
    PolicyError,
    parse_policy,
    parse_selector,
)

PROFILE_NAME = "eci-profile"


@dataclass(frozen=True)
class Effect:
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Selector:
    """Pods whose namespace and own labels match go to the node, with ``effect`` injected.
    An absent selector half matches everything; a selector with neither is refused."""

    name: str
    namespace_selector: LabelSelector | None
    object_selector: LabelSelector | None
    effect: Effect

    def matches(self, namespace_labels: Mapping[str, str] | None,
                labels: Mapping[str, str] | None) -> bool:
        return ((self.namespace_selector is None or self.namespace_selector.matches(
            namespace_labels)) and (self.object_selector is None
                                    or self.object_selector.matches(labels)))


@dataclass(frozen=True)
class Profile:
    selectors: tuple[Selector, ...] = ()
    vswitch_ids: tuple[str, ...] = ()  # empty: the node's --vswitch
    security_group_id: str | None = None  # None: the node's --security-group
    enable_cluster_ip: bool | None = None  # Service access; None: not said
    policy: Policy = field(default_factory=Policy)
    version: str = ""  # the ConfigMap's resourceVersion ("" : no ConfigMap)

    def selector_for(self, namespace_labels: Mapping[str, str] | None,
                     labels: Mapping[str, str] | None) -> Selector | None:
        """The first selector a pod matches (Alibaba's order: the list's)."""
        return next((s for s in self.selectors if s.matches(namespace_labels, labels)), None)


def _structured(raw: str, key: str) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise PolicyError(f"{key}: neither JSON nor YAML: {e}") from None


def _strings(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: expected a mapping of strings")
    return {str(k): str(v) for k, v in raw.items()}


def _selectors(raw: Any) -> tuple[Selector, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError("selectors: expected a list")
    out = []
    for i, s in enumerate(raw):
        where = f"selectors[{i}]"
        if not isinstance(s, Mapping):
            raise PolicyError(f"{where}: expected a mapping")
        ns = s.get("namespaceSelector")
        obj = s.get("objectSelector")
        if ns is None and obj is None:
            raise PolicyError(f"{where}: needs a namespaceSelector or an objectSelector")
        effect = s.get("effect") or {}
        if not isinstance(effect, Mapping):
            raise PolicyError(f"{where}.effect: expected annotations and labels")
        out.append(Selector(
            str(s.get("name") or where),
            parse_selector(ns, f"{where}.namespaceSelector") if ns is not None else None,
            parse_selector(obj, f"{where}.objectSelector") if obj is not None else None,
            Effect(_strings(effect.get("annotations"), f"{where}.effect.annotations"),
                   _strings(effect.get("labels"), f"{where}.effect.labels"))))
    return tuple(out)


def _flag(raw: str | None, key: str) -> bool | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise PolicyError(f"{key}: expected \"true\" or \"false\", got {raw!r}")
    return value == "true"


def parse_profile(data: Mapping[str, str] | None, version: str = "") -> Profile:
    """The profile of a ConfigMap's ``data``; :class:`PolicyError` names the bad key."""
    d = dict(data or {})
    vswitches = tuple(v.strip() for v in d.get("vSwitchIds", "").split(",") if v.strip())
    for v in vswitches:
        if not v.startswith("vsw-"):
            raise PolicyError(f"vSwitchIds: {v!r} is not a vSwitch id (vsw-…)")
    group = d.get("securityGroupId", "").strip() or None
    if group is not None and not group.startswith("sg-"):
        raise PolicyError(f"securityGroupId: {group!r} is not a security group id (sg-…)")
    return Profile(_selectors(_structured(d.get("selectors", ""), "selectors")), vswitches,
                   group, _flag(d.get("enableClusterIp"), "enableClusterIp"),
                   parse_policy(_structured(d.get("policy", ""), "policy")), version)
