"""``GET /containerLogs/{ns}/{pod}/{container}``: kubelet's log query on ECI's log call.

Without ``follow`` the query goes to ECI as is (``Tail``, ``SinceSeconds``, ``StartTime``,
``Timestamps``, ``LimitBytes``, ``LastTime``). ECI has no streaming log call, so ``follow``
polls: every poll asks for the lines since the newest timestamp already sent (always with
timestamps, to know where it stands; they are stripped again unless the caller asked for them),
drops the lines it sent before, and streams the rest, until the client goes away, the container
terminates or ``limitBytes`` is reached.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from vk_eci.provider import LogOptions, PodIO

FOLLOW_INTERVAL = 2.0
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d) ")


class BadQuery(ValueError):
    """A query parameter is invalid (HTTP 400); the message names it and the reason."""


def _bool(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return False
    low = raw.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise BadQuery(f"{name}: {raw!r} is not a boolean (true/false)")


def _int(query: Mapping[str, str], name: str, lowest: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{name}: {raw!r} is not an integer") from None
    if value < lowest:
        raise BadQuery(f"{name}: {value} must be at least {lowest}")
    return value


def parse_time(text: str) -> dt.datetime | None:
    """An RFC 3339 time (any fraction digits, ``Z`` or offset) in UTC; None if not one."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text.strip())
    if not m:
        return None
    frac = (m.group(2) or "")[:7]  # datetime takes at most microseconds
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return dt.datetime.fromisoformat(m.group(1) + frac + zone).astimezone(dt.UTC)
    except ValueError:
        return None


def parse_query(query: Mapping[str, str]) -> tuple[LogOptions, bool]:
    """Kubelet's PodLogOptions from the query string, and whether to follow."""
    since_time = None
    if query.get("sinceTime"):
        since_time = parse_time(query["sinceTime"])
        if since_time is None:
            raise BadQuery(f"sinceTime: {query['sinceTime']!r} is not an RFC 3339 time")
    options = LogOptions(
        tail_lines=_int(query, "tailLines", 0), since_seconds=_int(query, "sinceSeconds", 1),
        since_time=since_time, timestamps=_bool(query, "timestamps"),
        limit_bytes=_int(query, "limitBytes", 1), previous=_bool(query, "previous"))
    if options.since_seconds is not None and options.since_time is not None:
        raise BadQuery("at most one of sinceTime or sinceSeconds may be given")
    follow = _bool(query, "follow")
    if follow and options.previous:
        raise BadQuery("follow and previous cannot be combined: a previous run has ended")
    return options, follow


def split_stamp(line: str) -> tuple[dt.datetime | None, str]:
    """(time, text) of a ``<RFC3339> text`` log line; (None, line) when it has no stamp."""
    m = _TS.match(line)
    if not m:
        return None, line
    when = parse_time(line[: m.end() - 1])
    return (when, line[m.end():]) if when is not None else (None, line)


@dataclass
class FollowCursor:
    """Where a follow stands: the newest stamp sent and how many lines carried it."""

    last: dt.datetime | None = None
    at_last: int = 0

    def fresh(self, text: str) -> list[tuple[str, str]]:
        """The lines of ``text`` (stamped) not sent yet, as (line, text without its stamp),
        advancing the cursor.

        ECI answers ``StartTime`` from the start of a second, so a poll repeats lines already
        sent: those older than the cursor are dropped, and of those at the cursor's stamp as
        many as were sent.
        """
        out: list[tuple[str, str]] = []
        skip_at_last = self.at_last
        for line in text.splitlines():
            when, body = split_stamp(line)
            if when is not None and self.last is not None:
                if when < self.last:
                    continue
                if when == self.last and skip_at_last > 0:
                    skip_at_last -= 1
                    continue
            out.append((line, body))
            if when is not None:
                if self.last is not None and when == self.last:
                    self.at_last += 1
                else:
                    self.last, self.at_last = when, 1
        return out


def render(lines: list[tuple[str, str]], timestamps: bool) -> bytes:
    """The lines as sent: ECI's own stamps kept when asked for, else the bare text."""
    return "".join((line if timestamps else body) + "\n" for line, body in lines).encode()


async def follow(pod_io: PodIO, namespace: str, pod: str, container: str,
                 options: LogOptions, write: Callable[[bytes], Awaitable[None]], *,
                 interval: float = FOLLOW_INTERVAL) -> None:
    """Stream the container's log until it terminates, the limit is reached, or ``write``
    fails (the client went away: ``ConnectionError``, propagated to the caller)."""
    cursor = FollowCursor()
    budget = options.limit_bytes
    # tailLines=0 shows nothing old, but the cursor must still learn where the log stands:
    # ask for the last line and send nothing of the first answer.
    silent_first = options.tail_lines == 0
    query = replace(options, timestamps=True, limit_bytes=None,
                    tail_lines=1 if silent_first else options.tail_lines)
    while True:
        # The state first: lines written before the container ended are in the fetch after.
        state = await pod_io.container_state(namespace, pod, container)
        text = await pod_io.container_logs(namespace, pod, container, query)
        lines = cursor.fresh(text)
        chunk = b"" if silent_first else render(lines, options.timestamps)
        silent_first = False
        if budget is not None:
            chunk = chunk[:budget]
            budget -= len(chunk)
        if chunk:
            await write(chunk)
        if (budget is not None and budget <= 0) or state in (None, "Terminated"):
            return
        await asyncio.sleep(interval)
        if cursor.last is not None:
            # Only what is new: from the cursor's second (ECI's StartTime has no fraction).
            query = replace(query, tail_lines=None, since_seconds=None,
                            since_time=cursor.last.replace(microsecond=0))
        else:
            query = replace(query, tail_lines=None)  # the log was empty: all of it is new
