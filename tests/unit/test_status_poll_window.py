"""The changed-groups poll's window (``cloud/groups/poll.py``) against a service that applies
``SinceSecond`` when it answers, not when the poll was sent, as ECI does: however late the
answers come, every change is reported by some poll."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import pytest

from vk_eci.cloud.groups.poll import StatusPoller


@dataclass
class Item:
    container_group_id: str
    status: str
    pod_status: Any = None


class Service:
    """Groups that each change once, at a known time; an answer that takes ``latency``
    seconds of the test's clock looks at the window ending when it is answered."""

    def __init__(self, changes: dict[str, float]) -> None:
        self.changes = changes
        self.now = 0.0
        self.latency = 0.0
        self.windows: list[int] = []

    def wall(self) -> float:
        return self.now

    async def describe_container_group_status(self, *, tags: Any = None,
                                              since_second: int | None = None,
                                              ids: Any = None) -> list[Item]:
        assert since_second is not None
        self.windows.append(since_second)
        self.now += self.latency
        return [Item(gid, f"changed@{at}") for gid, at in self.changes.items()
                if self.now - since_second <= at <= self.now]


async def _run(latencies: list[float], interval: float = 1.0) -> tuple[set[str], Service]:
    # A change every 0.1 s over the polls' whole span.
    span = interval * (len(latencies) + 2) + sum(latencies) + 0.1
    service = Service({f"g{i}": 0.05 + i * 0.1 for i in range(int(span * 10))})
    poller = StatusPoller(service, {"vk-eci.io/node": "n"}, wall=service.wall)  # type: ignore[arg-type]
    poller.reset(0.0)   # a full listing at 0 covered everything before it
    reported: set[str] = set()
    # Then two fast answers: a slow last poll leaves its gap to the next one, by design.
    for latency in [*latencies, 0.05, 0.05]:
        service.now += interval
        service.latency = latency
        poll = await poller.poll()
        assert poll.complete
        reported.update(poll.changed)
        poller.applied(poll)
    # The last poll answered at service.now: every change up to there was due.
    due = {gid for gid, at in service.changes.items() if at <= service.now - 1.0}
    return due - reported, service


def test_a_late_answer_does_not_lose_the_changes_before_its_window() -> None:
    # Answers in 0.1 s, then one that takes 6 s (a loaded service), then fast again.
    missed, service = asyncio.run(_run([0.1, 0.1, 6.0, 0.1, 0.1, 0.1]))
    assert missed == set()
    # The poll after the slow one reached back past it (to the last contiguous poll).
    slow = 2
    assert service.windows[slow + 1] > service.windows[slow]


@pytest.mark.parametrize("seed", range(20))
def test_no_change_is_missed_whatever_the_answer_times(seed: int) -> None:
    rng = random.Random(seed)
    latencies = [rng.choice([0.05, 0.2, 1.5, 4.0, 9.0]) for _ in range(30)]
    missed, _ = asyncio.run(_run(latencies))
    assert missed == set(), sorted(missed)


def test_fast_answers_keep_the_window_near_the_poll_interval() -> None:
    _, service = asyncio.run(_run([0.05] * 10))
    # 1.05 s since the last poll, rounded up to 2 (which has room for a 0.05 s answer), +1 s
    # of overlap for ECI's whole-second stamps: no wider than without the allowance.
    assert max(service.windows[2:]) <= 3
