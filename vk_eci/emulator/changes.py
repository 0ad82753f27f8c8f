"""When a group last changed: what ``DescribeContainerGroupStatus`` ``SinceSecond`` filters on.

The timeline of a group is fixed at create (and at delete), and :func:`next_change` already
knows the next moment anything a describe shows can change; walking it forward from the
group's creation (or its deletion) finds the last change at or before ``now``. Clients poll
with a ``now`` that only grows, so a memo of (last change, next change) makes each answer
O(1) amortised, even for a crash-looping container with thousands of restarts.
"""

from __future__ import annotations

from vk_eci.emulator.groups import Group, next_change
from vk_eci.emulator.timing import Timing


def last_change(group: Group, timing: Timing, now: float) -> float:
    """The last moment at or before ``now`` at which the group's status (phase, conditions,
    container states, events) changed; its creation counts as a change."""
    memo = group.change_memo
    if memo is not None and memo[0] <= now < memo[1]:
        return memo[0]
    start = group.created
    if group.deleted_at is not None and group.deleted_at <= now:
        start = group.deleted_at   # deletion is a change, and the timeline after it is new
    elif group.updated_at is not None and group.updated_at <= now and (
            memo is None or memo[0] < group.updated_at):
        start = group.updated_at   # an update is a change, and re-plans what follows
    elif memo is not None and start <= memo[0] <= now:
        start = memo[0]
    t = start
    while True:
        nxt = next_change(group, timing, t)
        if nxt > now:
            group.change_memo = (t, nxt)
            return t
        t = nxt
