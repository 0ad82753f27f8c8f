"""Where and on what ECI places a pod: the placement annotations of Alibaba's "annotations for
ECI pods" (spot, GPU driver, identity, networking, sizing, registries), parsed from the pod's own
metadata into ``CreateContainerGroupRequest`` fields (docs/ANNOTATIONS.md lists each one).

Parsing never raises: a bad value, or a combination ECI would refuse or silently ignore (a price
limit without ``SpotWithPriceLimit``, a bandwidth without an EIP), is an
:class:`~vk_eci.cloud.placement.values.InvalidAnnotation` problem naming key, value and
reason. The provider turns problems into Warning events and refuses the pod
(:func:`check_placement`): a pod that asked for spot, a security group or a RAM role must not
run without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement import values
from vk_eci.cloud.placement.instance_family import instance_types, parse_families, parse_generations
from vk_eci.cloud.placement.specs import INSTANCE_TYPE_ANNOTATION, USE_SPECS_ANNOTATION
from vk_eci.cloud.placement.values import InvalidAnnotation

P = "k8s.aliyun.com/"
VSWITCH, SCHEDULE_STRATEGY, SECURITY_GROUP = P + "eci-vswitch", P + "eci-schedule-strategy", \
    P + "eci-security-group"
RAM_ROLE, RESOURCE_GROUP = P + "eci-ram-role-name", P + "eci-resource-group-id"
SPOT_STRATEGY, SPOT_PRICE_LIMIT = P + "eci-spot-strategy", P + "eci-spot-price-limit"
SPOT_DURATION, SPOT_FALLBACK = P + "eci-spot-duration", P + "eci-spot-fallback"
GPU_DRIVER, COMPUTE_CATEGORY = P + "eci-gpu-driver-version", P + "eci-compute-category"
CPU_CORE, CPU_HT = P + "eci-cpu-option-core", P + "eci-cpu-option-ht"
WITH_EIP, EIP_ID, EIP_BANDWIDTH = P + "eci-with-eip", P + "eci-eip-instanceid", \
    P + "eip-bandwidth"
EIP_ISP, EIP_PACKAGE = P + "eip-isp", P + "eip-common-bandwidth-package-id"
IPV6, IPV6_COUNT = P + "eci-enable-ipv6", P + "eci-ipv6-count"
INGRESS_BW, EGRESS_BW = "kubernetes.io/ingress-bandwidth", "kubernetes.io/egress-bandwidth"
EPHEMERAL = P + "eci-extra-ephemeral-storage"
CORE_PATTERN, NTP = P + "eci-core-pattern", P + "eci-ntp-server"
CUSTOM_TAGS = P + "eci-custom-tags"
FIXED_IP, FIXED_IP_RETAIN = P + "eci-fixed-ip", P + "eci-fixed-ip-retain-hour"
ACR_IDS, ACR_ID = P + "acr-instance-ids", P + "acr-instance-id"
PLAIN_HTTP, INSECURE = P + "plain-http-registry", P + "insecure-registry"
DATA_CACHE_BUCKET, DATA_CACHE_PL = P + "eci-data-cache-bucket", P + "eci-data-cache-pl"
DATA_CACHE_IOPS = P + "eci-data-cache-provisionedIops"
DATA_CACHE_BURST = P + "eci-data-cache-burstingEnabled"
FAMILY, GENERATION = P + "eci-instance-family", P + "eci-instance-generation"
PRIVATE_IP = P + "eci-private-ip-address"
IPV6_BW_ENABLE, IPV6_BW = P + "eci-ipv6-bandwidth-enable", P + "eci-ipv6-bandwidth"
# Honoured by the node itself (no CreateContainerGroup parameter): docs/ANNOTATIONS.md.
FAIL_STRATEGY, MAX_PENDING = P + "eci-fail-strategy", P + "eci-max-pending-minute"
FAIL_STRATEGIES = ("fail-back", "fail-over", "fail-fast")
DEFAULT_MAX_PENDING_MINUTES = 240
# Documented, but SDK 2.1.0's CreateContainerGroup has no parameter for them: a pod that asks
# for what they change is refused by name rather than run without it.
PRIVATE_POOL_MATCH, PRIVATE_POOL_ID = P + "eci-privatepool-matchcriteria", \
    P + "eci-privatepool-id"
EPHEMERAL_OPTIONS, EVICTION = P + "eci-ephemeral-storage-options", P + "eci-eviction-enable"

MAX_CUSTOM_TAGS = 3  # ECI adds at most three user tags per instance
_RESERVED_TAG_PREFIXES = ("aliyun", "acs:", "vk-eci.io/", "k8s.aliyun.com/")


# annotation → (CreateContainerGroupRequest attribute, parser). ``None`` from a parser: not set.
FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    VSWITCH: ("v_switch_id", values.ids("vsw-", 10)),
    SCHEDULE_STRATEGY: ("schedule_strategy", values.one_of("VSwitchOrdered", "VSwitchRandom")),
    SECURITY_GROUP: ("security_group_id", values.ids("sg-", 5)),
    RAM_ROLE: ("ram_role_name", values.ram_role),
    RESOURCE_GROUP: ("resource_group_id", values.ids("rg-", 1)),
    SPOT_STRATEGY: ("spot_strategy", values.one_of("SpotAsPriceGo", "SpotWithPriceLimit")),
    SPOT_PRICE_LIMIT: ("spot_price_limit", values.price),
    SPOT_DURATION: ("spot_duration", values.int_in(0, 1)),
    SPOT_FALLBACK: ("strict_spot", lambda t: not values.flag(t)),
    GPU_DRIVER: ("gpu_driver_version", values.gpu_driver),
    COMPUTE_CATEGORY: ("compute_category", values.categories),
    CPU_CORE: ("cpu_options_core", values.int_in(1, 128)),
    CPU_HT: ("cpu_options_threads_per_core", values.int_in(1, 2)),
    WITH_EIP: ("auto_create_eip", values.flag),
    EIP_ID: ("eip_instance_id", values.ids("eip-", 1)),
    EIP_BANDWIDTH: ("eip_bandwidth", values.int_in(1, 500)),
    EIP_ISP: ("eip_isp", values.one_of("BGP", "BGP_PRO")),
    EIP_PACKAGE: ("eip_common_bandwidth_package", values.ids("cbwp-", 1)),
    IPV6: ("ipv_6address_count", lambda t: 1 if values.flag(t) else None),
    IPV6_COUNT: ("ipv_6address_count", values.int_in(1, 1)),
    INGRESS_BW: ("ingress_bandwidth", values.bandwidth),
    EGRESS_BW: ("egress_bandwidth", values.bandwidth),
    EPHEMERAL: ("ephemeral_storage", values.gib),
    CORE_PATTERN: ("core_pattern", values.core_pattern),
    NTP: ("ntp_server", values.hosts),
    FIXED_IP: ("fixed_ip", lambda t: "true" if values.flag(t) else None),
    FIXED_IP_RETAIN: ("fixed_ip_retain_hour", values.int_in(1, 8760)),
    PLAIN_HTTP: ("plain_http_registry", values.registries),
    INSECURE: ("insecure_registry", values.registries),
    DATA_CACHE_BUCKET: ("data_cache_bucket", values.text),
    DATA_CACHE_PL: ("data_cache_pl", values.one_of("PL0", "PL1", "PL2", "PL3")),
    DATA_CACHE_IOPS: ("data_cache_provisioned_iops", values.int_in(0, 50000)),
    DATA_CACHE_BURST: ("data_cache_bursting_enabled", values.flag),
    PRIVATE_IP: ("private_ip_address", values.ipv4),
    IPV6_BW_ENABLE: ("ipv_6gateway_bandwidth_enable", values.flag),
    IPV6_BW: ("ipv_6gateway_bandwidth", values.mbps(1, 2000)),
}

_POOL_WHY = (f"private pools ({PRIVATE_POOL_MATCH}, {PRIVATE_POOL_ID}) have no "
             "CreateContainerGroup parameter in the ECI SDK this node uses (2.1.0): the pod "
             "would not run from its pool")
# annotation → (parser, why the node cannot honour it): refused once the value parses. Keys
# sharing a reason are one family, refused once, on the first of them the pod sets.
_UNSENDABLE: dict[str, tuple[Callable[[str], Any], str]] = {
    PRIVATE_POOL_MATCH: (values.one_of("Open", "Target", "None"), _POOL_WHY),
    PRIVATE_POOL_ID: (values.ids("eap-", 1), _POOL_WHY),
    EPHEMERAL_OPTIONS: (values.text, "ephemeral storage options (encryption) have no "
                        "CreateContainerGroup parameter in the ECI SDK this node uses (2.1.0): "
                        "the storage would not be encrypted"),
    EVICTION: (lambda t: True if values.flag(t) else None,
               "evicting a pod whose ephemeral storage runs low (under 100 MiB) is done by "
               "Alibaba's virtual node, not by a CreateContainerGroup parameter, and this node "
               "does not do it yet"),
}

# (annotation, annotation it needs, why): combinations ECI would ignore without saying so.
_NEEDS: tuple[tuple[str, str, str], ...] = (
    (SPOT_DURATION, SPOT_STRATEGY, "a spot duration needs a spot strategy"),
    (SPOT_FALLBACK, SPOT_STRATEGY, "a spot fallback needs a spot strategy"),
    (EIP_BANDWIDTH, WITH_EIP, "an EIP bandwidth applies only to an EIP created with the pod"),
    (EIP_ISP, WITH_EIP, "an EIP line type applies only to an EIP created with the pod"),
    (EIP_PACKAGE, WITH_EIP, "a bandwidth package applies only to an EIP created with the pod"),
    (FIXED_IP_RETAIN, FIXED_IP, "a retention period needs a fixed IP"),
    (IPV6_BW, IPV6_BW_ENABLE, "an IPv6 Internet bandwidth needs IPv6 Internet access"),
)


@dataclass(frozen=True)
class AcrInstance:
    """An ACR Enterprise Edition instance to pull from without a secret."""

    instance_id: str
    region_id: str | None = None


@dataclass(frozen=True)
class Placement:
    """The request fields a pod's placement annotations ask for, and what was wrong."""

    fields: Mapping[str, Any]
    tags: tuple[tuple[str, str], ...] = ()
    acr: tuple[AcrInstance, ...] = ()
    families: tuple[str, ...] = ()
    generations: tuple[str, ...] = ()
    problems: tuple[InvalidAnnotation, ...] = ()
    fail_strategy: str = "fail-back"
    max_pending_minutes: int = DEFAULT_MAX_PENDING_MINUTES

    @property
    def spot(self) -> bool:
        return "spot_strategy" in self.fields


def _custom_tags(v: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in (i.strip() for i in v.split(",") if i.strip()):
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or len(key) > 128 or len(value) > 128:
            raise values.Bad(f"{item!r} is not key:value")
        if key.strip().lower().startswith(_RESERVED_TAG_PREFIXES):
            raise values.Bad(f"tag key {key.strip()!r} is reserved")
        out.append((key.strip(), value.strip()))
    if not out or len(out) > MAX_CUSTOM_TAGS:
        raise values.Bad(f"expected 1 to {MAX_CUSTOM_TAGS} key:value tags, comma-separated")
    return out


def acr_instances(v: str) -> list[AcrInstance]:
    """``cri-…`` or ``<region>:cri-…``, comma-separated (``acr-instance-ids``)."""
    out = []
    for item in (i.strip() for i in v.split(",") if i.strip()):
        region, _, ident = item.rpartition(":")
        if not re.fullmatch(r"cri-[A-Za-z0-9]{1,64}", ident) or (
                region and not re.fullmatch(r"[a-z]{2,}-[a-z0-9-]+", region)):
            raise values.Bad(f"{item!r} is not cri-… or <region>:cri-…")
        out.append(AcrInstance(ident, region or None))
    if not out:
        raise values.Bad("expected one or more ACR instance ids")
    return out


def parse_placement(annotations: Mapping[str, str] | None) -> Placement:
    """The placement annotations of a pod (see the module docstring)."""
    ann = dict(annotations or {})
    parsed, problems = values.parse_present(ann, {k: p for k, (_, p) in FIELDS.items()})
    fields = {FIELDS[k][0]: v for k, v in parsed.items() if v is not None}
    tags: list[tuple[str, str]] = []
    acr: list[AcrInstance] = []
    for key, parse_list, out in ((CUSTOM_TAGS, _custom_tags, tags), (ACR_IDS, acr_instances, acr),
                                 (ACR_ID, acr_instances, acr)):
        if key in ann:
            try:
                out.extend(parse_list(ann[key]))  # type: ignore[arg-type]
            except values.Bad as bad:
                problems.append(InvalidAnnotation(key, ann[key], str(bad)))
    sizing: dict[str, list[str]] = {}
    for key, parse_sizing in ((FAMILY, parse_families), (GENERATION, parse_generations)):
        if key in ann:
            try:
                sizing[key] = parse_sizing(ann[key])
            except ValueError as bad:
                problems.append(InvalidAnnotation(key, ann[key], str(bad)))
            if USE_SPECS_ANNOTATION in ann or INSTANCE_TYPE_ANNOTATION in ann:
                why = "applies only to pods sized by vCPU and memory, not by instance type"
                problems.append(InvalidAnnotation(key, ann[key], why))
    if INSTANCE_TYPE_ANNOTATION in ann:
        legacy = ann[INSTANCE_TYPE_ANNOTATION]
        if USE_SPECS_ANNOTATION in ann:
            problems.append(InvalidAnnotation(INSTANCE_TYPE_ANNOTATION, legacy,
                                              f"set it or {USE_SPECS_ANNOTATION}, not both"))
        elif not all(t.strip().startswith("ecs.") for t in legacy.split(",") if t.strip()):
            problems.append(InvalidAnnotation(INSTANCE_TYPE_ANNOTATION, legacy,
                                              "expected ECS instance types such as ecs.c6.large"))
    problems += _combinations(ann, fields)
    node, refused = values.parse_present(ann, {
        FAIL_STRATEGY: values.one_of(*FAIL_STRATEGIES), MAX_PENDING: values.int_in(10, 1440),
        **{k: p for k, (p, _) in _UNSENDABLE.items()}})
    problems += refused
    # One problem (one Warning) per family, whichever of its keys the pod set.
    family: dict[str, str] = {}
    for key, (_, why) in _UNSENDABLE.items():
        if node.get(key) is not None:
            family.setdefault(why, key)
    problems += [InvalidAnnotation(key, ann[key], why) for why, key in family.items()]
    return Placement(fields, tuple(tags), tuple(dict.fromkeys(acr)),
                     tuple(sizing.get(FAMILY, ())), tuple(sizing.get(GENERATION, ())),
                     tuple(problems), node.get(FAIL_STRATEGY, "fail-back"),
                     node.get(MAX_PENDING, DEFAULT_MAX_PENDING_MINUTES))


def _combinations(ann: Mapping[str, str], fields: Mapping[str, Any]) -> list[InvalidAnnotation]:
    out = [InvalidAnnotation(key, ann[key], why) for key, needs, why in _NEEDS
           if key in ann and needs not in ann]
    strategy = fields.get("spot_strategy")
    if strategy == "SpotWithPriceLimit" and "spot_price_limit" not in fields \
            and SPOT_PRICE_LIMIT not in ann:
        out.append(InvalidAnnotation(SPOT_STRATEGY, ann[SPOT_STRATEGY],
                                     f"SpotWithPriceLimit needs {SPOT_PRICE_LIMIT}"))
    if SPOT_PRICE_LIMIT in ann and strategy != "SpotWithPriceLimit" and \
            ann.get(SPOT_STRATEGY, "").strip() != "SpotWithPriceLimit":
        out.append(InvalidAnnotation(SPOT_PRICE_LIMIT, ann[SPOT_PRICE_LIMIT],
                                     f"a price limit needs {SPOT_STRATEGY}=SpotWithPriceLimit"))
    if fields.get("auto_create_eip") and "eip_instance_id" in fields:
        out.append(InvalidAnnotation(EIP_ID, ann[EIP_ID],
                                     f"cannot bind an existing EIP and also set {WITH_EIP}"))
    if fields.get("ipv_6gateway_bandwidth_enable") and "ipv_6address_count" not in fields:
        out.append(InvalidAnnotation(IPV6_BW_ENABLE, ann[IPV6_BW_ENABLE],
                                     f"IPv6 Internet access needs {IPV6}"))
    if IPV6 in ann and IPV6_COUNT in ann:
        out.append(InvalidAnnotation(IPV6_COUNT, ann[IPV6_COUNT], f"set it or {IPV6}, not both"))
    return out


def check_placement(placement: Placement) -> None:
    """Raise :class:`InvalidInput` (code ``InvalidAnnotation``) for the first problem."""
    if placement.problems:
        first = placement.problems[0]
        raise InvalidInput(f"annotation {first.key}", f'"{first.value}": {first.reason}',
                           code="InvalidAnnotation")


def apply_placement(req: Any, placement: Placement) -> None:
    """Set the fields on ``req`` (a pod's own vSwitches and security groups replace the node's;
    its custom tags are added after ours; ACR instances become ``AcrRegistryInfo``)."""
    check_placement(placement)
    for attr, value in placement.fields.items():
        setattr(req, attr, value)
    if "v_switch_id" in placement.fields:
        # The node's zone belongs to the node's vSwitch: ECI takes the zone of the pod's own.
        req.zone_id = None
    if placement.tags:
        req.tag = [*(req.tag or []), *(eci.CreateContainerGroupRequestTag(key=k, value=v)
                                      for k, v in placement.tags)]
    if placement.families or placement.generations:
        req.instance_type = instance_types(list(placement.families),
                                           list(placement.generations),
                                           float(req.cpu or 0), float(req.memory or 0))
    if placement.acr:
        req.acr_registry_info = [eci.CreateContainerGroupRequestAcrRegistryInfo(
            instance_id=a.instance_id, region_id=a.region_id) for a in placement.acr]
