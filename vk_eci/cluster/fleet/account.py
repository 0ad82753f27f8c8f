"""Which ECI account a process spends: region and a hash of what identifies the caller (the
access key id, or the RAM role), never the key itself, as a label value and a Lease name."""

from __future__ import annotations

import hashlib
import re

ACCOUNT_LABEL = "vk-eci.io/eci-account"
LEASE_PREFIX = "vk-eci-fleet-"


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def account_key(region: str, caller: str) -> str:
    """``<region>.<16 hex of sha256(caller)>``: a valid label value (at most 63 characters)
    that says which account two processes share without revealing the caller's key id."""
    region_part = re.sub(r"[^a-z0-9-]", "-", region.lower())[:40] or "region"
    return f"{region_part}.{_digest(caller, 16)}"


def member_lease_name(identity: str) -> str:
    """A DNS-1123 Lease name for a process identity: readable prefix, unique hash suffix."""
    readable = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:32].strip("-")
    return f"{LEASE_PREFIX}{readable + '-' if readable else ''}{_digest(identity, 10)}"
