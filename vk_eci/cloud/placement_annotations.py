"""Where and on what ECI places a pod: the placement annotations of Alibaba's "annotations for
ECI pods" (spot, GPU driver, identity, networking, sizing, registries), parsed from the pod's own
metadata into ``CreateContainerGroupRequest`` fields (docs/ANNOTATIONS.md lists each one).

Parsing never raises: a bad value, or a combination ECI would refuse or silently ignore (a price
limit without ``SpotWithPriceLimit``, a bandwidth without an EIP), is an
:class:`~vk_eci.cloud.annotations.InvalidAnnotation` problem naming key, value and reason. The
provider turns problems into Warning events and refuses the pod (:func:`check_placement`): a pod
that asked for spot, a security group or a RAM role must not run without it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from vk_eci.cloud.annotations import InvalidAnnotation
from vk_eci.cloud.errors import InvalidInput
from vk_eci.cloud.specs import parse_quantity

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

MAX_CUSTOM_TAGS = 3  # ECI adds at most three user tags per instance
_RESERVED_TAG_PREFIXES = ("aliyun", "acs:", "vk-eci.io/", "k8s.aliyun.com/")


class _Bad(ValueError):
    """A value that cannot be used; the message is the reason."""


def _bool(v: str) -> bool:
    if v.strip().lower() not in ("true", "false"):
        raise _Bad('expected "true" or "false"')
    return v.strip().lower() == "true"


def _one_of(*allowed: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v.strip() not in allowed:
            raise _Bad(f"expected one of {', '.join(allowed)}")
        return v.strip()
    return parse


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        if not v.strip().isdigit() or not lo <= int(v) <= hi:
            raise _Bad(f"expected a whole number from {lo} to {hi}")
        return int(v)
    return parse


def _ids(prefix: str, most: int) -> Callable[[str], str]:
    def parse(v: str) -> str:
        items = [i.strip() for i in v.split(",") if i.strip()]
        if not items or len(items) > most:
            raise _Bad(f"expected 1 to {most} comma-separated {prefix}… ids")
        for item in items:
            if not re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9]{1,64}", item):
                raise _Bad(f"{item!r} is not a {prefix}… id")
        return ",".join(items)
    return parse


def _price(v: str) -> float:
    try:
        price = Decimal(v.strip())
    except InvalidOperation:
        raise _Bad("expected an hourly price such as 0.5") from None
    if not price.is_finite() or price <= 0 or price.as_tuple().exponent < -3:  # type: ignore[operator]
        raise _Bad("expected a positive hourly price with at most three decimals")
    return float(price)


def _categories(v: str) -> list[str]:
    items = [i.strip() for i in v.split(",") if i.strip()]
    if not items or any(i not in ("economy", "general") for i in items):
        raise _Bad("expected economy and/or general, comma-separated")
    return list(dict.fromkeys(items))


def _ram_role(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.\-_]{1,64}", v.strip()):
        raise _Bad("expected a RAM role name (1-64 letters, digits, '.', '-', '_')")
    return v.strip()


def _bandwidth(v: str) -> int:
    """``40M``, ``1G``, ``500k`` (bit/s, decimal prefixes as ECI reads them) → bit/s."""
    m = re.fullmatch(r"([0-9]+)([kKMG]?)", v.strip())
    if not m or int(m.group(1)) == 0:
        raise _Bad("expected a bandwidth such as 40M (bit/s with k, M or G)")
    return int(m.group(1)) * {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}[m.group(2)]


def _gib(v: str) -> int:
    try:
        amount = parse_quantity(v, "ephemeral storage")
    except InvalidInput:
        raise _Bad("expected a storage quantity such as 50Gi") from None
    gib = -(-amount // (Decimal(2) ** 30))  # ECI takes whole GiB: round up, never down
    if not 1 <= gib <= 2048:  # type: ignore[operator]
        raise _Bad("expected from 1Gi to 2048Gi")
    return int(gib)


def _core_pattern(v: str) -> str:
    if not v.startswith("/") or v.startswith("|") or any(c.isspace() for c in v):
        raise _Bad("expected an absolute directory path for core dumps (no pipe, no spaces)")
    return v


def _hosts(v: str) -> list[str]:
    items = [i.strip() for i in v.split(",") if i.strip()]
    if not items:
        raise _Bad("expected one or more NTP server addresses")
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?", item):
                raise _Bad(f"{item!r} is neither an IP address nor a host name") from None
    return items


def _registries(v: str) -> str:
    items = [i.strip() for i in v.split(",") if i.strip()]
    if not items:
        raise _Bad("expected registry addresses such as harbor.example.com,10.0.0.5:5000")
    for item in items:
        if "/" in item or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", item):
            raise _Bad(f"{item!r} is not a registry host[:port]")
    return ",".join(items)


def _text(v: str) -> str:
    if not v.strip() or len(v) > 128:
        raise _Bad("expected a non-empty name of at most 128 characters")
    return v.strip()


# annotation → (CreateContainerGroupRequest attribute, parser). ``None`` from a parser: not set.
FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    VSWITCH: ("v_switch_id", _ids("vsw-", 10)),
    SCHEDULE_STRATEGY: ("schedule_strategy", _one_of("VSwitchOrdered", "VSwitchRandom")),
    SECURITY_GROUP: ("security_group_id", _ids("sg-", 5)),
    RAM_ROLE: ("ram_role_name", _ram_role),
    RESOURCE_GROUP: ("resource_group_id", _ids("rg-", 1)),
    SPOT_STRATEGY: ("spot_strategy", _one_of("SpotAsPriceGo", "SpotWithPriceLimit")),
    SPOT_PRICE_LIMIT: ("spot_price_limit", _price),
    SPOT_DURATION: ("spot_duration", _int_in(0, 1)),
    SPOT_FALLBACK: ("strict_spot", lambda v: not _bool(v)),
    GPU_DRIVER: ("gpu_driver_version", _one_of("tesla=470.82.01", "tesla=525.85.12")),
    COMPUTE_CATEGORY: ("compute_category", _categories),
    CPU_CORE: ("cpu_options_core", _int_in(1, 128)),
    CPU_HT: ("cpu_options_threads_per_core", _int_in(1, 2)),
    WITH_EIP: ("auto_create_eip", _bool),
    EIP_ID: ("eip_instance_id", _ids("eip-", 1)),
    EIP_BANDWIDTH: ("eip_bandwidth", _int_in(1, 500)),
    EIP_ISP: ("eip_isp", _one_of("BGP", "BGP_PRO")),
    EIP_PACKAGE: ("eip_common_bandwidth_package", _ids("cbwp-", 1)),
    IPV6: ("ipv_6address_count", lambda v: 1 if _bool(v) else None),
    IPV6_COUNT: ("ipv_6address_count", _int_in(1, 1)),
    INGRESS_BW: ("ingress_bandwidth", _bandwidth),
    EGRESS_BW: ("egress_bandwidth", _bandwidth),
    EPHEMERAL: ("ephemeral_storage", _gib),
    CORE_PATTERN: ("core_pattern", _core_pattern),
    NTP: ("ntp_server", _hosts),
    FIXED_IP: ("fixed_ip", lambda v: "true" if _bool(v) else None),
    FIXED_IP_RETAIN: ("fixed_ip_retain_hour", _int_in(1, 8760)),
    PLAIN_HTTP: ("plain_http_registry", _registries),
    INSECURE: ("insecure_registry", _registries),
    DATA_CACHE_BUCKET: ("data_cache_bucket", _text),
    DATA_CACHE_PL: ("data_cache_pl", _one_of("PL0", "PL1", "PL2", "PL3")),
    DATA_CACHE_IOPS: ("data_cache_provisioned_iops", _int_in(0, 50000)),
    DATA_CACHE_BURST: ("data_cache_bursting_enabled", _bool),
}

# (annotation, annotation it needs, why): combinations ECI would ignore without saying so.
_NEEDS: tuple[tuple[str, str, str], ...] = (
    (SPOT_DURATION, SPOT_STRATEGY, "a spot duration needs a spot strategy"),
    (SPOT_FALLBACK, SPOT_STRATEGY, "a spot fallback needs a spot strategy"),
    (EIP_BANDWIDTH, WITH_EIP, "an EIP bandwidth applies only to an EIP created with the pod"),
    (EIP_ISP, WITH_EIP, "an EIP line type applies only to an EIP created with the pod"),
    (EIP_PACKAGE, WITH_EIP, "a bandwidth package applies only to an EIP created with the pod"),
    (FIXED_IP_RETAIN, FIXED_IP, "a retention period needs a fixed IP"),
    (SCHEDULE_STRATEGY, VSWITCH, "a multi-zone strategy needs the pod's own vSwitch list"),
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
    problems: tuple[InvalidAnnotation, ...] = ()

    @property
    def spot(self) -> bool:
        return "spot_strategy" in self.fields


def _custom_tags(v: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in (i.strip() for i in v.split(",") if i.strip()):
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or len(key) > 128 or len(value) > 128:
            raise _Bad(f"{item!r} is not key:value")
        if key.strip().lower().startswith(_RESERVED_TAG_PREFIXES):
            raise _Bad(f"tag key {key.strip()!r} is reserved")
        out.append((key.strip(), value.strip()))
    if not out or len(out) > MAX_CUSTOM_TAGS:
        raise _Bad(f"expected 1 to {MAX_CUSTOM_TAGS} key:value tags, comma-separated")
    return out


def _acr(v: str) -> list[AcrInstance]:
    out = []
    for item in (i.strip() for i in v.split(",") if i.strip()):
        region, _, ident = item.rpartition(":")
        if not re.fullmatch(r"cri-[A-Za-z0-9]{1,64}", ident) or (
                region and not re.fullmatch(r"[a-z]{2,}-[a-z0-9-]+", region)):
            raise _Bad(f"{item!r} is not cri-… or <region>:cri-…")
        out.append(AcrInstance(ident, region or None))
    if not out:
        raise _Bad("expected one or more ACR instance ids")
    return out


def parse_placement(annotations: Mapping[str, str] | None) -> Placement:
    """The placement annotations of a pod (see the module docstring)."""
    ann = dict(annotations or {})
    fields: dict[str, Any] = {}
    problems: list[InvalidAnnotation] = []
    for key, (attr, parse) in FIELDS.items():
        if key not in ann:
            continue
        try:
            value = parse(ann[key])
        except _Bad as bad:
            problems.append(InvalidAnnotation(key, ann[key], str(bad)))
            continue
        if value is not None:
            fields[attr] = value
    tags: list[tuple[str, str]] = []
    acr: list[AcrInstance] = []
    for key, parse_list, out in ((CUSTOM_TAGS, _custom_tags, tags), (ACR_IDS, _acr, acr),
                                 (ACR_ID, _acr, acr)):
        if key in ann:
            try:
                out.extend(parse_list(ann[key]))  # type: ignore[arg-type]
            except _Bad as bad:
                problems.append(InvalidAnnotation(key, ann[key], str(bad)))
    problems += _combinations(ann, fields)
    return Placement(fields, tuple(tags), tuple(dict.fromkeys(acr)), tuple(problems))


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
    from alibabacloud_eci20180808 import models as eci

    check_placement(placement)
    for attr, value in placement.fields.items():
        setattr(req, attr, value)
    if "v_switch_id" in placement.fields:
        # The node's zone belongs to the node's vSwitch: ECI takes the zone of the pod's own.
        req.zone_id = None
    if placement.tags:
        req.tag = [*(req.tag or []), *(eci.CreateContainerGroupRequestTag(key=k, value=v)
                                      for k, v in placement.tags)]
    if placement.acr:
        req.acr_registry_info = [eci.CreateContainerGroupRequestAcrRegistryInfo(
            instance_id=a.instance_id, region_id=a.region_id) for a in placement.acr]
