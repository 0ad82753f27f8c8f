"""ECI image cache → ImageCache ``.status``: a pure mapping, plus the phase vocabulary.

The status mirrors what ``DescribeImageCaches`` says (phase, progress, events, expiry) in the shape
the ECI documentation shows its users. ``lastUpdatedTime`` moves only when something else moved,
so that an unchanged cache causes no write to the API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# ECI statuses.
PREPARING = "Preparing"
CREATING = "Creating"
READY = "Ready"
FAILED = "Failed"
UPDATING = "Updating"
UPDATE_FAILED = "UpdateFailed"
# Phases only the controller knows.
PENDING = "Pending"        # not yet created in ECI (e.g. waiting for a secret)
EXPIRED = "Expired"        # ECI removed it at the end of its retention
DELETED = "Deleted"        # removed in ECI by someone else

BUILDING = frozenset({PREPARING, CREATING, UPDATING})
UPDATABLE = frozenset({READY, UPDATE_FAILED})
GONE = frozenset({EXPIRED, DELETED})

FAILED_RETENTION = timedelta(hours=24)

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(text: str | None) -> datetime | None:
    """ECI writes ``2019-10-10T09:14Z``, or with seconds, fractions, offsets; None if unreadable."""
    if not text:
        return None
    m = _TIME_RE.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    tz = UTC
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(
            sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                    micro, tzinfo=tz).astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_time(text: str | None) -> str | None:
    moment = parse_time(text)
    return format_time(moment) if moment else None


def _attr(obj: Any, name: str) -> Any:
    return getattr(obj, name, None)


def map_events(cache: Any) -> list[dict[str, Any]]:
    """ECI cache events in the documentation's shape: like Kubernetes Events, named by image."""
    out = []
    for ev in _attr(cache, "events") or []:
        name = _attr(ev, "name") or ""
        entry: dict[str, Any] = {
            "count": int(_attr(ev, "count") or 1),
            "firstTimestamp": normalise_time(_attr(ev, "first_timestamp")),
            "lastTimestamp": normalise_time(_attr(ev, "last_timestamp")),
            "message": _attr(ev, "message") or "",
            "reason": _attr(ev, "reason") or "",
            "type": _attr(ev, "type") or "Normal",
            "metadata": {"name": name},
            "involvedObject": {"name": _attr(cache, "image_cache_id") or ""},
            "source": {"component": "kubelet", "host": "eci"},
        }
        out.append({k: v for k, v in entry.items() if v is not None})
    return out


def failure_reason(cache: Any) -> tuple[str, str]:
    """(reason, message) of a failed build: its last Warning event, else a generic one."""
    warnings = [ev for ev in _attr(cache, "events") or [] if _attr(ev, "type") == "Warning"]
    if warnings:
        last = warnings[-1]
        return (_attr(last, "reason") or "BuildFailed",
                _attr(last, "message") or "the ECI image cache build failed")
    return "BuildFailed", "the ECI image cache build failed"


def _failed_since(cache: Any, now: datetime) -> datetime:
    stamps = [parse_time(_attr(ev, "last_timestamp")) for ev in _attr(cache, "events") or []
              if _attr(ev, "type") == "Warning"]
    known = [s for s in stamps if s is not None]
    return max(known) if known else now


def status_from_cache(cache: Any, previous: Mapping[str, Any] | None, now: datetime,
                      generation: int | None = None) -> dict[str, Any]:
    """The ``.status`` for ECI ``cache`` (an SDK DescribeImageCaches item).

    ``previous`` is the current status; its ``lastUpdatedTime`` (and a failed cache's expiry) is
    kept when nothing else changed.
    """
    previous = previous or {}
    phase = _attr(cache, "status") or PENDING
    status: dict[str, Any] = {
        "phase": phase,
        "progress": _attr(cache, "progress") or ("100%" if phase == READY else "0%"),
        "imageCacheId": _attr(cache, "image_cache_id"),
        "imageCacheName": _attr(cache, "image_cache_name"),
        "snapshotId": _attr(cache, "snapshot_id"),
        "images": list(_attr(cache, "images") or []),
        "imageCacheSize": _attr(cache, "image_cache_size"),
        "startTime": normalise_time(_attr(cache, "creation_time")),
        "expireDateTime": normalise_time(_attr(cache, "expire_date_time")),
        "events": map_events(cache),
        # The controller's own conditions (say, a spec change ECI cannot apply) outlive a poll.
        "conditions": previous.get("conditions"),
        "lastRefreshTime": previous.get("lastRefreshTime"),  # the controller's, like those
        "purgedTime": previous.get("purgedTime"),
        "reason": None,
        "message": None,
    }
    if phase in (FAILED, UPDATE_FAILED):
        status["reason"], status["message"] = failure_reason(cache)
    if phase == FAILED and not status["expireDateTime"]:
        # ECI keeps a failed cache 24 h; if it does not say when, count from the failure.
        kept = previous.get("expireDateTime") if previous.get("phase") == FAILED else None
        status["expireDateTime"] = kept or format_time(_failed_since(cache, now) + FAILED_RETENTION)
    if generation is not None:
        status["observedGeneration"] = generation
    status = {k: v for k, v in status.items() if v is not None or k in ("reason", "message")}
    unchanged = previous.get("lastUpdatedTime") and not changed(previous, status)
    status["lastUpdatedTime"] = previous["lastUpdatedTime"] if unchanged else format_time(now)
    return status


def changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` says anything ``previous`` does not (``lastUpdatedTime`` aside)."""
    for key, value in new.items():
        if key == "lastUpdatedTime":
            continue
        if previous.get(key) != value:
            return True
    return False


SPEC_APPLIED = "SpecApplied"


def spec_applied_condition(generation: int, refused: Sequence[str],
                           now: datetime) -> dict[str, Any]:
    """The ``SpecApplied`` condition: False while a spec change needs the object re-created."""
    return {"type": SPEC_APPLIED, "status": "False" if refused else "True",
            "reason": "RecreateRequired" if refused else "Applied",
            "message": "; ".join(refused) if refused else
            "every spec field is applied to the ECI image cache",
            "observedGeneration": generation, "lastTransitionTime": format_time(now)}


def with_condition(conditions: Sequence[Mapping[str, Any]] | None,
                   condition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``conditions`` with ``condition`` in place of the one of its type; keeps the old
    transition time when the status did not change."""
    out = [dict(c) for c in conditions or [] if c.get("type") != condition.get("type")]
    new = dict(condition)
    for old in conditions or []:
        if old.get("type") == new.get("type") and old.get("status") == new.get("status"):
            new["lastTransitionTime"] = old.get("lastTransitionTime") or \
                new.get("lastTransitionTime")
    out.append(new)
    return out


def detached(previous: Mapping[str, Any]) -> dict[str, Any]:
    """The status of an object that stops following the cache it named (its own comes next):
    nothing of that cache is kept, the controller's conditions are."""
    status: dict[str, Any] = {"phase": PENDING, "progress": "0%",
                              "lastUpdatedTime": format_time(now())}
    if previous.get("conditions"):
        status["conditions"] = previous["conditions"]
    return status


def gone_status(previous: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The status of an object whose ECI cache no longer exists: expired or deleted."""
    expiry = parse_time(previous.get("expireDateTime"))
    phase = EXPIRED if expiry is not None and expiry <= now + timedelta(minutes=1) else DELETED
    cache_id = previous.get("imageCacheId")
    if expiry is not None and phase == EXPIRED:
        message = f"ECI image cache {cache_id} expired at {format_time(expiry)}"
    else:
        message = f"ECI image cache {cache_id} no longer exists in ECI"
    return {"phase": phase, "progress": previous.get("progress", "0%"), "reason": phase,
            "message": message, "lastUpdatedTime": format_time(now)}


def merge_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``previous`` into ``new`` (dropped keys set to null)."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if previous.get(k) != v}
    for key in previous:
        if key not in new:
            patch[key] = None
    return patch
