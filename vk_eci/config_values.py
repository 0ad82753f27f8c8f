"""How one setting of ``vk-eci run`` becomes a typed value, and :class:`ConfigError`.

Each parser takes the setting's name (for the message) and a raw value from a flag, an
environment variable or the YAML file, and returns the typed value or raises
:class:`ConfigError` naming the flag and the reason. Also here: Kubernetes quantities,
``host:port`` and the loopback test that decides whether plain http may be spoken. Apart from
:mod:`vk_eci.config` so that the table of settings there reads as a table; checks across
settings are in :mod:`vk_eci.config_checks`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ENV_PREFIX = "VK_ECI_"
# A bracketed host may be IPv6 or IPv4 (the chart writes "[$(POD_IP)]:port" for either).
_HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]*|\[[0-9a-fA-F:.]+\]):(?P<port>\d{1,5})$")
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting and the reason."""


def flag_of(name: str) -> str:
    """The flag of a setting: ``--`` and its name with dashes."""
    return "--" + name.replace("_", "-")


def env_of(name: str) -> str:
    """The environment variable of a setting."""
    return ENV_PREFIX + name.upper()


def as_str(name: str, value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{flag_of(name)}: expected a string, got {type(value).__name__}")
    return str(value).strip()


def as_int(name: str, value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{flag_of(name)}: {value!r} is not an integer") from None


def as_seconds(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        text = str(value).strip()
        return float(text[:-1]) if text.endswith("s") else float(text)
    except ValueError:
        raise ConfigError(f"{flag_of(name)}: {value!r} is not a number of seconds") from None


def as_number(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{flag_of(name)}: {value!r} is not a number") from None


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{flag_of(name)}: {value!r} is not a boolean (true/false)")


def as_list(name: str, value: Any) -> tuple[str, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in as_str(name, item).split(",") if p.strip())
    return tuple(out)


def as_labels(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): as_str(name, v) for k, v in value.items()}
    out: dict[str, str] = {}
    for item in as_list(name, value):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag_of(name)}: {item!r} is not key=value")
        out[key] = val
    return out


def as_rates(name: str, value: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, raw in as_labels(name, value).items():
        try:
            rate = float(raw)
        except ValueError:
            raise ConfigError(f"{flag_of(name)}: {key}={raw!r}: the per-minute rate must be a "
                              "number") from None
        action, at, budget = key.partition("@")
        # ACTION@interactive: the share of kubectl logs/exec (cloud/api/ratelimit.py), which must
        # shrink with the node's own when the account's quota is smaller (or shared).
        if rate < 0 or not action.isalnum() or (at and budget != "interactive"):
            raise ConfigError(f"{flag_of(name)}: {key}={raw!r} must be ACTION=PER_MINUTE or "
                              "ACTION@interactive=PER_MINUTE with a rate of 0 (unlimited) "
                              "or more")
        out[key] = rate
    return out


def as_path(name: str, value: Any) -> Path:
    return Path(as_str(name, value)).expanduser()


def parse_quantity(name: str, text: str) -> Decimal:
    """A Kubernetes quantity (``500m``, ``4Gi``, ``1000``) as a number; ConfigError if not."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ConfigError(f"{flag_of(name)}: {text!r} is not a Kubernetes quantity "
                          "(e.g. 1000, 4Ti)")
    try:
        value = Decimal(m["num"]) * _SUFFIX[m["suffix"]]
    except InvalidOperation:
        raise ConfigError(f"{flag_of(name)}: {text!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{flag_of(name)}: {text!r} must be positive")
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP or a name, no port) names this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_refusal(protocol: str, endpoint: str, insecure: bool) -> str | None:
    """Why plain http to ``endpoint`` (host[:port]) is refused, or None when it is fine."""
    if protocol != "http" or insecure:
        return None
    host = endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint
    if endpoint.startswith("[") and "]" in endpoint:
        host = endpoint[1:endpoint.index("]")]
    if is_loopback(host):
        return None
    return (f"--eci-protocol: http to {endpoint!r} is refused: only a loopback endpoint (the "
            "local emulator) may be spoken to in clear text, since requests carry registry "
            "passwords and secret volumes; use https, or --insecure-eci-endpoint to accept it")


def split_hostport(name: str, text: str) -> tuple[str, int]:
    m = _HOSTPORT.match(text)
    if not m or not 0 <= int(m["port"]) <= 65535:
        raise ConfigError(f"--{name}: {text!r} is not host:port")
    return (m["host"].strip("[]") or "0.0.0.0"), int(m["port"])
