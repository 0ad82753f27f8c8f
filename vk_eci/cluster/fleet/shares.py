"""A member's share of the account's budget from what it sees, pure (``docs/RELIABILITY.md``
"One account budget").

Each member publishes its *view*: the identities it counts, after it has applied the share
``1/len(view)``. The invariant that keeps the account under its limits is that every *active*
member's view holds every active member: then each active share is at most ``1/#active`` and the
shares sum to at most 1 at every instant. A member therefore

- counts every member whose Lease it sees alive (so it shrinks as soon as it sees a newcomer),
- is active only while its own Lease is renewed (within the renew deadline, before anyone can
  judge it expired) and its informer listed the Leases after its own Lease was created (so it
  sees every member that joined before it), and only once every live member it sees counts it
  (a newcomer starts at zero; members created after it see it, and it waits for them too),
- drops a member only when that member's Lease is deleted or has not changed for its lease
  duration on our clock: by then the member has stopped granting itself (renew deadline).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    """Another member as this one sees it: its identity, its published view, whether alive."""

    identity: str
    view: frozenset[str]
    alive: bool


@dataclass(frozen=True)
class Decision:
    view: frozenset[str]  # whom this member counts (published after the share is applied)
    share: float          # its share of every limit now
    waiting_for: frozenset[str]  # live members that do not count it yet (share 0 until none)


def decide(me: str, others: Iterable[Seen], *, renewed: bool, synced: bool) -> Decision:
    live = [m for m in others if m.alive and m.identity != me]
    view = frozenset(m.identity for m in live) | {me}
    waiting = frozenset(m.identity for m in live if me not in m.view)
    active = renewed and synced and not waiting
    return Decision(view=view, share=1.0 / len(view) if active else 0.0, waiting_for=waiting)
