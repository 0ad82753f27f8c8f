"""What ECI does with a create's placement parameters (instance types with GPUs, CPU
architecture, spot pricing and its protection period, EIP, IPv6, fixed IP, vSwitches and zones,
security groups), and spot preemption with ECI's release warning.

Prices are the emulator's own model (not Alibaba's price list): on-demand per hour is
``0.1*vCPU + 0.015*GiB + 1.5*GPU``, the spot market price ``SPOT_RATIO`` of it. A
``SpotWithPriceLimit`` below the market price is refused as ECS refuses it. A spot group is
preempted by :func:`preempt` (tests, demos, ``/__emulator/preempt``): the ``SpotToBeReleased``
Warning at once, ``Expired`` ``SPOT_WARNING_S`` (scaled) later; never inside its protection
period (``SpotDuration`` hours, default 1).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

from vk_eci.emulator.catalog import Access, registry_key
from vk_eci.emulator.errors import ApiError, invalid, missing
from vk_eci.emulator.params import Tree, get_bool, get_float, get_int, get_list, get_str

# ECS GPU instance types ECI offers: vCPU, GiB, GPUs (a representative subset).
GPU_TYPES: dict[str, tuple[float, float, int]] = {
    "ecs.gn6i-c4g1.xlarge": (4, 15, 1), "ecs.gn6i-c8g1.2xlarge": (8, 31, 1),
    "ecs.gn6i-c16g1.4xlarge": (16, 62, 1), "ecs.gn6i-c24g1.12xlarge": (48, 186, 2),
    "ecs.gn6v-c8g1.2xlarge": (8, 32, 1), "ecs.gn6v-c8g1.8xlarge": (32, 128, 4),
    "ecs.gn7i-c8g1.2xlarge": (8, 30, 1), "ecs.gn7i-c32g1.16xlarge": (64, 376, 2),
}
ARM_FAMILIES = ("ecs.g8y", "ecs.c8y", "ecs.r8y")  # Yitian 710 (ARM64) families
SPOT_RATIO = 0.3
SPOT_WARNING_S = 180.0  # ECI warns about three minutes before it releases a spot instance
HOUR_S = 3600.0
SPOT_STRATEGIES = ("NoSpot", "SpotAsPriceGo", "SpotWithPriceLimit")


@dataclass
class Placed:
    """Where and how a group runs, decided at create."""

    zone: str
    vswitch: str
    spot_strategy: str = "NoSpot"
    spot_price: float = 0.0          # market price per hour at create (spot only)
    protected_until: float | None = None
    internet_ip: str = ""
    ipv6: str = ""
    expire_at: float | None = None   # set by preempt(): the group is Expired from here


def on_demand_price(cpu: float, memory: float, gpus: int) -> float:
    return round(0.1 * cpu + 0.015 * memory + 1.5 * gpus, 3)


def spot_price(cpu: float, memory: float, gpus: int) -> float:
    return round(on_demand_price(cpu, memory, gpus) * SPOT_RATIO, 3)


def instance_size(instance_type: str) -> tuple[float, float, int] | None:
    """(vCPU, GiB, GPUs) of a known instance type."""
    return GPU_TYPES.get(instance_type)


def _ids(tree: Tree, field: str, prefix: str, most: int) -> list[str]:
    raw = get_str(tree, field) or ""
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids:
        raise missing(field)
    if len(ids) > most or any(not i.startswith(prefix) for i in ids):
        raise invalid(field, f"expected 1 to {most} comma-separated {prefix}… ids")
    return ids


def _zone_of(vswitch: str, zones: list[str]) -> str:
    # A vSwitch lives in one zone; the emulator derives it stably from the id.
    return zones[zlib.crc32(vswitch.encode()) % len(zones)]


def check_gpus(instance_type: str, containers: list[Any]) -> int:
    """GPUs the containers ask for, checked against the instance type."""
    wanted = 0
    for i, c in enumerate(containers, 1):
        n = int(c.raw.get("Gpu", 0) or 0)
        if n < 0:
            raise invalid(f"Container.{i}.Gpu", "must not be negative")
        wanted += n
    if wanted:
        size = instance_size(instance_type)
        if size is None:
            raise invalid("Container.Gpu", f"{wanted} GPU(s) asked for, but instance type "
                          f"{instance_type or '(cpu/memory spec)'} has no GPU",
                          code="InvalidParameter.Gpu")
        if wanted > size[2]:
            raise invalid("Container.Gpu", f"{wanted} GPU(s) asked for, {instance_type} has "
                          f"{size[2]}", code="InvalidParameter.Gpu")
    return wanted


def _architecture(tree: Tree, instance_type: str) -> None:
    arch = get_str(tree, "CpuArchitecture") or "AMD64"
    if arch not in ("AMD64", "ARM64"):
        raise invalid("CpuArchitecture", f"{arch!r} is not AMD64 or ARM64")
    if instance_type and (arch == "ARM64") != instance_type.startswith(ARM_FAMILIES):
        raise invalid("InstanceType", f"{instance_type} is not an {arch} instance type",
                      code="InvalidParameter.CpuArchitecture")


def _spot(tree: Tree, placed: Placed, now: float, price: float) -> None:
    strategy = get_str(tree, "SpotStrategy") or "NoSpot"
    if strategy not in SPOT_STRATEGIES:
        raise invalid("SpotStrategy", f"{strategy!r} is not one of {list(SPOT_STRATEGIES)}")
    limit = get_float(tree, "SpotPriceLimit")
    duration = get_int(tree, "SpotDuration", lo=0, hi=1)
    placed.spot_strategy = strategy
    if strategy == "NoSpot":
        return
    if strategy == "SpotWithPriceLimit":
        if limit is None:
            raise missing("SpotPriceLimit")
        if limit < price:
            raise ApiError("InvalidSpotPriceLimit.LowerThanPublicPrice",
                           f"The specified SpotPriceLimit {limit:g} is lower than the current "
                           f"spot price {price:g}.", 400)
    placed.spot_price = price
    placed.protected_until = now + (1 if duration is None else duration) * HOUR_S


def place(tree: Tree, *, zones: list[str], seq: int, now: float, instance_type: str,
          price: float) -> Placed:
    """Validate the placement parameters and decide zone, vSwitch, addresses and spot."""
    vswitches = _ids(tree, "VSwitchId", "vsw-", 10)
    _ids(tree, "SecurityGroupId", "sg-", 5)
    strategy = get_str(tree, "ScheduleStrategy") or "VSwitchOrdered"
    if strategy not in ("VSwitchOrdered", "VSwitchRandom"):
        raise invalid("ScheduleStrategy", f"{strategy!r} is not VSwitchOrdered/VSwitchRandom")
    # Ordered: the first vSwitch has stock in the emulator; random: a stable pick per group.
    vswitch = vswitches[0] if strategy == "VSwitchOrdered" else vswitches[seq % len(vswitches)]
    zone = get_str(tree, "ZoneId") or _zone_of(vswitch, zones)
    _architecture(tree, instance_type)
    placed = Placed(zone, vswitch)
    _spot(tree, placed, now, price)
    eip_id = get_str(tree, "EipInstanceId")
    if get_bool(tree, "AutoCreateEip") or eip_id:
        if get_bool(tree, "AutoCreateEip") and eip_id:
            raise invalid("EipInstanceId", "cannot be combined with AutoCreateEip")
        get_int(tree, "EipBandwidth", lo=1, hi=500)
        # TEST-NET-3 addresses: public-looking, never routable.
        placed.internet_ip = f"203.0.113.{seq % 254 + 1}"
    ipv6 = get_int(tree, "Ipv6AddressCount", lo=1, hi=1)
    if ipv6:
        placed.ipv6 = f"2001:db8::{seq:x}"
    if get_bool(tree, "Ipv6GatewayBandwidthEnable") and not ipv6:
        raise invalid("Ipv6GatewayBandwidthEnable", "IPv6 Internet access needs Ipv6AddressCount")
    if get_str(tree, "Ipv6GatewayBandwidth") is not None:
        if not get_bool(tree, "Ipv6GatewayBandwidthEnable"):
            raise invalid("Ipv6GatewayBandwidth", "needs Ipv6GatewayBandwidthEnable=true")
        get_int(tree, "Ipv6GatewayBandwidth", lo=1, hi=2000)
    private_ip = get_str(tree, "PrivateIpAddress")
    if private_ip is not None and not re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", private_ip):
        raise invalid("PrivateIpAddress", f"{private_ip!r} is not an IPv4 address")
    driver = get_str(tree, "GpuDriverVersion")
    if driver is not None and not re.fullmatch(r"tesla=\d{3}\.\d{1,3}(\.\d{1,3})?", driver):
        raise invalid("GpuDriverVersion", f"{driver!r} is not tesla=<version>")
    get_int(tree, "EphemeralStorage", lo=1, hi=2048)
    get_int(tree, "FixedIpRetainHour", lo=1)
    return placed


def registry_access(tree: Tree) -> Access:
    """``PlainHttpRegistry``, ``InsecureRegistry`` and ``AcrRegistryInfo`` of a create."""
    def keys(field: str) -> frozenset[str]:
        raw = get_str(tree, field) or ""
        return frozenset(registry_key(r) for r in raw.split(",") if r.strip())

    acr = frozenset(str(item.get("InstanceId", "")) for item in get_list(tree, "AcrRegistryInfo")
                    if isinstance(item, dict))
    return Access(keys("PlainHttpRegistry"), keys("InsecureRegistry"), acr - {""})


def preempt(group: Any, timing: Any, now: float) -> float:
    """Reclaim a spot group: ``SpotToBeReleased`` now (or when its protection ends), Expired
    ``SPOT_WARNING_S`` later. Returns when it expires."""
    placed: Placed = group.placed
    if placed.spot_strategy == "NoSpot":
        raise ValueError(f"{group.id} is not a spot instance")
    if placed.expire_at is not None:
        return placed.expire_at
    warn_at = max(now, placed.protected_until or now)
    placed.expire_at = warn_at + timing.d(SPOT_WARNING_S)
    group.event("Warning", "SpotToBeReleased", "Spot ECI will be released in 3 minutes",
                warn_at)
    group.json_cache = None  # the memo was valid "until the next change"; this is one
    group.change_memo = None
    return placed.expire_at
