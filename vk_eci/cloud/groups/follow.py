"""Groups read again a short while after they changed: their late events (:class:`FollowUps`).

The changed-groups poll (:mod:`vk_eci.cloud.groups.poll`) reports a group when its status
changes. ECI may record an event a moment after the change that caused it (a second container
started, a custom event, a warning) while the status stays as it is: no poll reports the group
again, and the event would wait for the next full listing (a minute). So each group a poll
found changed is read again ``FOLLOW_AFTER`` seconds after its last change, once per entry.
The follow-ups ride in the free places of the call that fetches a poll's changed groups (20 ids
a call), so a status never waits for a call of theirs; when nothing changed they get a call of
their own, and one that is due waits up to ``BATCH_WAIT`` for others to share it. Cost: at most
``len(FOLLOW_AFTER)`` reads per changed group, 20 to a call (0.1 call per change), and none
while nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

FOLLOW_AFTER = (3.0, 15.0)  # seconds after a group's last change at which it is read again
BATCH_WAIT = 2.0            # a due follow-up waits up to this long to share a call
BATCH = 20                  # ids per DescribeContainerGroups call


@dataclass
class FollowUps:
    """Which groups to read again now; see the module docstring."""

    after: tuple[float, ...] = FOLLOW_AFTER
    wait: float = BATCH_WAIT
    batch: int = BATCH
    clock: Callable[[], float] = time.monotonic
    # group id -> (when it last changed, how many follow-ups it had since)
    _due: dict[str, tuple[float, int]] = field(default_factory=dict)

    def changed(self, gid: str) -> None:
        """``gid`` changed now: its follow-ups start again."""
        self._due[gid] = (self.clock(), 0)

    def forget(self, gids: Iterable[str]) -> None:
        for gid in gids:
            self._due.pop(gid, None)

    def take(self, room: int | None = None) -> list[str]:
        """The ids to read now, oldest first. ``room``: how many fit, free, into a call made
        anyway (the changed groups' last, partly filled one): up to that many of those due,
        without waiting. None: a call of their own, so empty while those due may still wait
        for others to share it."""
        now = self.clock()
        due = sorted((at + self.after[k], gid) for gid, (at, k) in self._due.items()
                     if now >= at + self.after[k])
        if room is not None:
            due = due[:room]
        elif not due or (len(due) < self.batch and now - due[0][0] < self.wait):
            return []
        for _, gid in due:
            at, k = self._due[gid]
            if k + 1 < len(self.after):
                self._due[gid] = (at, k + 1)
            else:
                del self._due[gid]
        return [gid for _, gid in due]

    def __len__(self) -> int:
        return len(self._due)
