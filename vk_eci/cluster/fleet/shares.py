"""A member's share of the account's budget from what it sees, pure (``docs/RELIABILITY.md``
"One account budget").

Each member has a *weight* (1 for a process that writes for its node, :data:`STANDBY_WEIGHT`
for a hot standby, so that a standby does not halve its leader's budget) and publishes its
*view*: the identities it counts, and the weight (with its epoch) at which it counts each,
after it has applied the share ``a / (a + sum of the others' weights)``, ``a`` being its own
*applied* weight. The invariant that keeps the account under its limits is that every *active*
member counts every active member at no less than that member's applied weight: then each
active share is at most ``a_i / sum(a)`` and the shares sum to at most 1 at every instant.
A member therefore

- counts every member whose Lease it sees alive, at the weight that member publishes (so it
  shrinks as soon as it sees a newcomer or a raised weight),
- is active only while its own Lease is renewed (within the renew deadline, before anyone can
  judge it expired) and its informer listed the Leases after its own Lease was created (so it
  sees every member that joined before it), and only once every live member it sees counts it
  (a newcomer starts at zero; members created after it see it, and it waits for them too),
- lowers its applied weight at once, but raises it only once every live member counts it at the
  new weight *of the same epoch* (the epoch grows at each change of the wanted weight: a count
  published before a lower weight was seen cannot vouch for a raise after it),
- drops a member only when that member's Lease is deleted or has not changed for its lease
  duration on our clock: by then the member has stopped granting itself (renew deadline).

A member of an older version publishes no weights: it is taken to want weight 1 and to count
every member of its view at weight 1, which is never less than anyone's applied weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# A hot standby's weight against 1 for a writer: with one standby its leader spends 32/33 (97%)
# of the account's limits. Not 0: a standby still lists the image-cache catalog. A standby that
# takes over raises its weight to 1 once every live member counts it so (the dead leader counts
# nothing: its Lease must first expire, as its share could not be reused earlier anyway).
STANDBY_WEIGHT = 1 / 32


@dataclass(frozen=True)
class Weight:
    value: float
    epoch: int = 0  # grows at each change of the wanted value

    def render(self) -> str:
        return f"{self.value:.6g}@{self.epoch}"

    @staticmethod
    def parse(text: str | None) -> Weight:
        """An older member publishes none: weight 1."""
        if not text:
            return Weight(1.0)
        value, _, epoch = text.partition("@")
        try:
            return Weight(min(1.0, max(0.0, float(value))), int(epoch or 0))
        except ValueError:
            return Weight(1.0)


@dataclass(frozen=True)
class Seen:
    """Another member as this one sees it: its identity, its published view, whether alive, the
    weight it wants and whom it counts at which weight (None: an older member, counting every
    member of its view at weight 1)."""

    identity: str
    view: frozenset[str]
    alive: bool
    weight: Weight = Weight(1.0)
    counts: Mapping[str, Weight] | None = None

    def vouches(self, who: str, wanted: Weight) -> bool:
        """Whether it counts ``who`` at ``wanted`` or more, having seen that very epoch."""
        if who not in self.view:
            return False
        if self.counts is None:
            return True
        got = self.counts.get(who)
        return got is not None and got.epoch == wanted.epoch and got.value >= wanted.value


@dataclass(frozen=True)
class Decision:
    view: frozenset[str]  # whom this member counts (published after the share is applied)
    share: float          # its share of every limit now
    waiting_for: frozenset[str]  # live members that do not count it yet (share 0 until none)
    applied: float = 1.0  # its own weight in the share (<= wanted, raised only when vouched)
    counts: Mapping[str, Weight] = field(default_factory=dict)  # whom at which weight
    wanted: Weight = Weight(1.0)  # the weight it publishes with this decision


def decide(me: str, others: Iterable[Seen], *, renewed: bool, synced: bool,
           wanted: Weight = Weight(1.0), applied: float = 1.0) -> Decision:
    """``wanted``: the weight this member publishes; ``applied``: the weight it last applied
    (0 for a newcomer)."""
    live = [m for m in others if m.alive and m.identity != me]
    view = frozenset(m.identity for m in live) | {me}
    counts = {m.identity: m.weight for m in live}
    waiting = frozenset(m.identity for m in live if me not in m.view)
    if all(m.vouches(me, wanted) for m in live):
        applied = wanted.value
    else:
        applied = min(applied, wanted.value)
    active = renewed and synced and not waiting and applied > 0
    total = applied + sum(w.value for w in counts.values())
    return Decision(view=view, share=applied / total if active else 0.0, waiting_for=waiting,
                    applied=applied, counts=counts, wanted=wanted)
