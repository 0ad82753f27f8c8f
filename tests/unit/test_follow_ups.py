"""Which recently changed groups are read again, and when (cloud/groups/follow.py)."""

from __future__ import annotations

from vk_eci.cloud.groups.follow import FollowUps


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_change_is_followed_up_at_each_offset_then_dropped() -> None:
    clock = Clock()
    f = FollowUps(after=(3.0, 15.0), wait=0.0, clock=clock)
    f.changed("a")
    clock.now += 2.9
    assert f.take() == []
    clock.now += 0.2
    assert f.take() == ["a"]
    assert f.take() == []          # taken once per offset
    clock.now += 12.0
    assert f.take() == ["a"]
    clock.now += 100.0
    assert f.take() == [] and len(f) == 0


def test_a_new_change_starts_the_follow_ups_again() -> None:
    clock = Clock()
    f = FollowUps(after=(3.0, 15.0), wait=0.0, clock=clock)
    f.changed("a")
    clock.now += 3.0
    assert f.take() == ["a"]
    f.changed("a")
    clock.now += 3.0
    assert f.take() == ["a"]       # the first offset again, after the new change


def test_due_follow_ups_wait_to_share_a_call_unless_a_call_is_full() -> None:
    clock = Clock()
    f = FollowUps(after=(3.0,), wait=2.0, batch=3, clock=clock)
    f.changed("a")
    clock.now += 1.0
    f.changed("b")
    clock.now += 2.5               # a due 0.5 s ago, b not yet
    assert f.take() == []
    clock.now += 1.5               # a waited 2 s: a and b go together
    assert f.take() == ["a", "b"]
    for gid in "cde":
        f.changed(gid)
    clock.now += 3.0               # three due at once fill a call: no waiting
    assert f.take() == ["c", "d", "e"]


def test_forgotten_groups_are_not_followed() -> None:
    clock = Clock()
    f = FollowUps(after=(3.0,), wait=0.0, clock=clock)
    f.changed("a")
    f.forget(["a"])
    clock.now += 5.0
    assert f.take() == []


def test_follow_ups_fill_the_free_places_of_a_call_made_anyway() -> None:
    clock = Clock()
    f = FollowUps(after=(3.0,), wait=60.0, batch=20, clock=clock)
    for gid in "abc":
        f.changed(gid)
    clock.now += 3.0
    assert f.take(room=2) == ["a", "b"]   # no waiting: the call is made for other groups
    assert f.take(room=0) == []
    assert f.take(room=5) == ["c"]
