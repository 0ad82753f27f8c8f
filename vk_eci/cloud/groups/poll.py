"""Which of this node's groups changed: ``DescribeContainerGroupStatus`` with ``SinceSecond``.

Each poll asks ECI for the node's groups (by tags) whose status changed in a window reaching
one second further back than the previous successful poll (``SinceSecond`` counts whole
seconds and ECI stamps whole seconds, so windows overlap and no change at a boundary is
missed). A group seen again with the same ECI status and PodStatus (the overlap) is dropped, so
each change is fetched once. After a failed poll the next window reaches back to the last
successful one; after a gap longer than ``max_window`` the caller should list everything.

ECI applies ``SinceSecond`` at the moment it answers, each page at its own, not when the node
sent the poll: an answer that comes seconds late (a loaded service, many pages) looked at a
window that ended seconds later and so began seconds later too, and a change between the
previous poll and that later start would never be reported by a poll (only by the next full
listing, a minute or more away at thousands of pods). So each window also reaches back by
twice the last poll's answer time (beyond what rounding up to whole seconds already gives), and
a poll that took longer than that allowance does not move the start of the next window: the
next poll reaches back to the last poll that was contiguous with its predecessor.

Groups being deleted are also asked for by id (no window): a group that is gone shows no
change, only absence, and the pod waits on that to be removed.

The poller also says since when a change can have happened: a change first reported by poll
``k`` was not there when poll ``k-1`` was sent, as long as the polls were contiguous.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vk_eci.cloud.api.client import EciClient, Tags

OVERLAP_S = 1  # extra second of window: ECI's whole-second clock and request latency


@dataclass
class Poll:
    """What one poll found: ids whose status changed, and the lower bound of when."""

    sent: float                # epoch seconds the poll was sent
    changed: list[str]
    not_before: float | None   # epoch seconds; None when the previous poll is unknown
    complete: bool             # False: too long since the last poll, list everything instead
    gone: list[str] = field(default_factory=list)   # watched ids ECI no longer has
    # Its window reached back to the previous poll however late ECI answered within the
    # allowance; False: the answer came later than that, so the next window must not start
    # from this poll.
    contiguous: bool = True
    took: float = 0.0          # seconds from sending to the last page's answer


class StatusPoller:
    """See the module docstring. Call :meth:`applied` or :meth:`failed` after each poll."""

    def __init__(self, client: EciClient, tags: Tags, *, max_window: float = 600.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.tags = tags
        self.max_window = max_window
        self._wall = wall
        self._last_ok: float | None = None   # send time of the last applied poll or listing
        self._seen: dict[str, tuple[Any, Any]] = {}  # group id -> fingerprint of last status
        self._took = 0.0   # seconds the last poll's answer took: the next window's allowance

    def reset(self, at: float) -> None:
        """A full listing sent at ``at`` (epoch s) has covered every change before it."""
        self._last_ok = at if self._last_ok is None else max(self._last_ok, at)

    async def poll(self, watch: Sequence[str] = ()) -> Poll:
        """Changed groups of the node, and which of ``watch`` (ids) are gone."""
        sent = self._wall()
        previous = self._last_ok
        if previous is None or sent - previous > self.max_window:
            return Poll(sent, [], None, complete=False)
        gap = sent - previous
        base = max(1, math.ceil(gap))
        slack = base - gap   # how far the whole-second rounding already reaches back
        # Room for an answer twice as slow as the last one; none when the rounding has it.
        need = 2 * self._took
        allowance = 0 if need <= slack else math.ceil(need - slack)
        window = base + OVERLAP_S + allowance
        items = await self.client.describe_container_group_status(tags=self.tags,
                                                                  since_second=window)
        took = self._wall() - sent
        gone = []
        if watch:
            current = await self.client.describe_container_group_status(ids=list(watch))
            present = {str(item.container_group_id) for item in current}
            gone = [gid for gid in watch if gid not in present]
            items = [*items, *current]
        changed = []
        for item in items:
            gid = str(item.container_group_id or "")
            mark = fingerprint(item)
            if gid and self._seen.get(gid) != mark:
                self._seen[gid] = mark
                changed.append(gid)
        return Poll(sent, list(dict.fromkeys(changed)), previous, complete=True, gone=gone,
                    contiguous=took <= allowance + slack, took=took)

    def applied(self, poll: Poll) -> None:
        """The poll's changes are applied: the next window starts from it, unless its answer
        came too late to be sure it reached back to its predecessor (then the next one reaches
        back as this one did, with a larger allowance)."""
        self._took = poll.took
        if poll.contiguous:
            self._last_ok = poll.sent

    def failed(self, poll: Poll) -> None:
        """Its changes were not applied: the next poll reaches back further and reports them
        again."""
        for gid in poll.changed:
            self._seen.pop(gid, None)

    def forget(self, live: set[str]) -> None:
        """Drop the fingerprints of groups that no longer exist."""
        for gid in [g for g in self._seen if g not in live]:
            del self._seen[gid]


def fingerprint(item: Any) -> tuple[Any, int]:
    """ECI status + a digest of the PodStatus of a ``Data`` item, comparable with ``==`` (a
    group is in several overlapping windows, so this runs several times per change). A digest,
    not the PodStatus itself: one is kept per group of the node, and a copy of every group's
    PodStatus cost ~2 KiB per pod for nothing but this comparison."""
    pod_status = item.pod_status.to_map() if item.pod_status is not None else None
    text = json.dumps(pod_status, sort_keys=True, separators=(",", ":"), default=str)
    return item.status, int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
