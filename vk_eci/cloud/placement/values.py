"""Parsers of annotation values (ids, flags, prices, bandwidths, sizes, addresses).

Each takes the annotation's text and returns the value for the request, or raises :class:`Bad`
whose message is the reason (the caller names key and value). Also what every annotation
parser shares (placement's and the image-cache ones): :class:`InvalidAnnotation`, the pod's own
annotations (:func:`annotations_of`) and :func:`parse_bool`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.specs import parse_quantity


@dataclass(frozen=True)
class InvalidAnnotation:
    """One annotation whose value cannot be used."""

    key: str
    value: str
    reason: str

    def message(self) -> str:
        return f'annotation {self.key}="{self.value}" is invalid: {self.reason}'


def annotations_of(pod: Any) -> Mapping[str, str]:
    """The pod's own annotations (a ``V1Pod`` or a plain dict), never its owner's."""
    if isinstance(pod, Mapping):
        raw = (pod.get("metadata") or {}).get("annotations")
    else:
        metadata = getattr(pod, "metadata", None)
        raw = getattr(metadata, "annotations", None) if metadata is not None else None
    return raw or {}


def parse_bool(value: str) -> bool | None:
    """``true``/``false`` in any case (surrounding blanks ignored); None for anything else."""
    text = value.strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    return None


class Bad(ValueError):
    """A value that cannot be used; the message is the reason."""


def parse_present(annotations: Mapping[str, str], parsers: Mapping[str, Callable[[str], Any]],
                  ) -> tuple[dict[str, Any], list[InvalidAnnotation]]:
    """Each annotation of ``parsers`` that ``annotations`` has, parsed: the values by key, and
    a problem for each value its parser refused."""
    out: dict[str, Any] = {}
    problems: list[InvalidAnnotation] = []
    for key, parse in parsers.items():
        if key in annotations:
            try:
                out[key] = parse(annotations[key])
            except Bad as bad:
                problems.append(InvalidAnnotation(key, annotations[key], str(bad)))
    return out, problems


def flag(v: str) -> bool:
    if v.strip().lower() not in ("true", "false"):
        raise Bad('expected "true" or "false"')
    return v.strip().lower() == "true"


def one_of(*allowed: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v.strip() not in allowed:
            raise Bad(f"expected one of {', '.join(allowed)}")
        return v.strip()
    return parse


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        # int() takes less whitespace than str.strip() removes ("0\x1f"): parse the stripped text.
        v = v.strip()
        if not re.fullmatch(r"[0-9]{1,9}", v) or not lo <= int(v) <= hi:
            raise Bad(f"expected a whole number from {lo} to {hi}")
        return int(v)
    return parse


def ids(prefix: str, most: int) -> Callable[[str], str]:
    def parse(v: str) -> str:
        items = [i.strip() for i in v.split(",") if i.strip()]
        if not items or len(items) > most:
            raise Bad(f"expected 1 to {most} comma-separated {prefix}… ids")
        for item in items:
            if not re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9]{1,64}", item):
                raise Bad(f"{item!r} is not a {prefix}… id")
        return ",".join(items)
    return parse


def price(v: str) -> float:
    try:
        price = Decimal(v.strip())
    except InvalidOperation:
        raise Bad("expected an hourly price such as 0.5") from None
    if not price.is_finite() or price <= 0 or price.as_tuple().exponent < -3:  # type: ignore[operator]
        raise Bad("expected a positive hourly price with at most three decimals")
    return float(price)


def categories(v: str) -> list[str]:
    items = [i.strip() for i in v.split(",") if i.strip()]
    if not items or any(i not in ("economy", "general") for i in items):
        raise Bad("expected economy and/or general, comma-separated")
    return list(dict.fromkeys(items))


def ram_role(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.\-_]{1,64}", v.strip()):
        raise Bad("expected a RAM role name (1-64 letters, digits, '.', '-', '_')")
    return v.strip()


# ECI's spellings (B, K/KB, M/MB, G/GB, T/TB; none: bytes) and Kubernetes' quantity suffixes.
# Decimal prefixes except Kubernetes' explicit binary ones (docs/ANNOTATIONS.md, "Bandwidth").
_RATE_UNITS = {"": 1, "B": 1, "k": 10**3, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6,
               "G": 10**9, "GB": 10**9, "T": 10**12, "TB": 10**12,
               "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(" + "|".join(sorted(_RATE_UNITS, key=len,
                                                                  reverse=True)) + ")")


def bandwidth(v: str) -> int:
    """``40M``, ``1G``, ``512Ki``, ``100MB``, ``2048`` → **bytes** per second, the unit ECI reads
    the pod annotations in (``40M`` is 40 MB/s, 320 Mbit/s) and the unit of the request's
    ``IngressBandwidth`` / ``EgressBandwidth`` in ECI's user guide, so the number is sent as
    is (docs/ANNOTATIONS.md, "Bandwidth")."""
    m = _RATE.fullmatch(v.strip())
    rate = (Decimal(m.group(1)) * _RATE_UNITS[m.group(2)]).to_integral_value() if m else 0
    if rate < 1:
        raise Bad("expected a bandwidth in bytes per second such as 40M (40 MB/s): a number "
                  "with B, K, KB, M, MB, G, GB, T, TB, k, Ki, Mi, Gi or Ti, or none (bytes)")
    return int(rate)


def gib(v: str) -> int:
    try:
        amount = parse_quantity(v, "ephemeral storage")
    except InvalidInput:
        raise Bad("expected a storage quantity such as 50Gi") from None
    gib = -(-amount // (Decimal(2) ** 30))  # ECI takes whole GiB: round up, never down
    if not 1 <= gib <= 2048:  # type: ignore[operator]
        raise Bad("expected from 1Gi to 2048Gi")
    return int(gib)


def core_pattern(v: str) -> str:
    if not v.startswith("/") or v.startswith("|") or any(c.isspace() for c in v):
        raise Bad("expected an absolute directory path for core dumps (no pipe, no spaces)")
    return v


def hosts(v: str) -> list[str]:
    items = [i.strip() for i in v.split(",") if i.strip()]
    if not items:
        raise Bad("expected one or more NTP server addresses")
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?", item):
                raise Bad(f"{item!r} is neither an IP address nor a host name") from None
    return items


def registries(v: str) -> str:
    items = [i.strip() for i in v.split(",") if i.strip()]
    if not items:
        raise Bad("expected registry addresses such as harbor.example.com,10.0.0.5:5000")
    for item in items:
        if "/" in item or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", item):
            raise Bad(f"{item!r} is not a registry host[:port]")
    return ",".join(items)


def text(v: str) -> str:
    if not v.strip() or len(v) > 128:
        raise Bad("expected a non-empty name of at most 128 characters")
    return v.strip()


def ipv4(v: str) -> str:
    try:
        return str(ipaddress.IPv4Address(v.strip()))
    except ValueError:
        raise Bad("expected an IPv4 address (ECI takes only IPv4 here)") from None


def mbps(lo: int, hi: int) -> Callable[[str], str]:
    """``100M`` or ``100`` (Mbit/s) → ``"100"``, from ``lo`` to ``hi``."""
    def parse(v: str) -> str:
        m = re.fullmatch(r"([0-9]{1,6})[Mm]?", v.strip())
        if not m or not lo <= int(m.group(1)) <= hi:
            raise Bad(f"expected a bandwidth from {lo} to {hi} Mbit/s such as 100M")
        return m.group(1)
    return parse


def gpu_driver(v: str) -> str:
    """``tesla=<driver version>``: ECI's documented form; which versions an instance type
    offers varies by type and over time, so ECI itself answers for the version."""
    if not re.fullmatch(r"tesla=[0-9]{3}\.[0-9]{1,3}(\.[0-9]{1,3})?", v.strip()):
        raise Bad("expected tesla=<driver version>, e.g. tesla=525.85.12")
    return v.strip()
