"""Clocks, programs (what a container's command does) and restart cycles."""

from __future__ import annotations

import pytest

from vk_eci.emulator.clock import MANUAL_EPOCH, ManualClock, RealClock, iso
from vk_eci.emulator.lifecycle import run_state
from vk_eci.emulator.programs import exec_output, parse
from vk_eci.emulator.timing import Timing


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock()
    assert clock.now() == MANUAL_EPOCH
    clock.advance(50)
    assert clock.now() == MANUAL_EPOCH + 50
    with pytest.raises(ValueError, match="back in time"):
        clock.advance(-1)
    assert iso(clock.now()) == "2024-01-01T00:00:50Z"


def test_real_clock_is_monotonic_wall_time() -> None:
    import time

    clock = RealClock()
    a = clock.now()
    b = clock.now()
    assert b >= a
    assert abs(a - time.time()) < 5


@pytest.mark.parametrize(("command", "args", "duration", "code", "lines"), [
    (["sh", "-c", "echo hello; sleep 5; exit 3"], [], 5.0, 3, ["hello"]),
    (["sleep"], ["10"], 10.0, 0, []),
    (["/bin/true"], [], 0.0, 0, []),
    (["false"], [], 0.0, 1, []),
    (["bash", "-c", "false && echo no || echo yes"], [], 0.0, 0, ["yes"]),
    (["echo", "a  b"], [], 0.0, 0, ["a  b"]),
    (["sh", "-c", "sleep 1m\necho done"], [], 60.0, 0, ["done"]),
])
def test_programs_that_end(command: list[str], args: list[str], duration: float, code: int,
                           lines: list[str]) -> None:
    p = parse(command, args)
    assert p.duration == duration
    assert p.exit_code == code
    assert [text for _, text in p.lines] == lines


@pytest.mark.parametrize("command", [[], ["nginx", "-g", "daemon off;"], ["sleep", "infinity"],
                                     ["sh", "-c", "echo up; exec server"]])
def test_programs_that_run_until_deleted(command: list[str]) -> None:
    assert parse(command, []).duration is None


def test_echo_offsets_follow_sleeps() -> None:
    p = parse(["sh", "-c", "echo a; sleep 2; echo b"], [])
    assert p.lines == ((0.0, "a"), (2.0, "b"))


def test_exec_output() -> None:
    assert exec_output(["sh", "-c", "echo hi; exit 4"]) == ("hi\n", 4)


def test_never_policy_terminates_once() -> None:
    t = Timing()
    assert run_state(100, 5, 1, "Never", t, 104).phase == "Running"
    done = run_state(100, 5, 1, "Never", t, 106)
    assert (done.phase, done.end, done.restart_count) == ("Terminated", 105, 0)


def test_always_policy_backs_off_exponentially_then_caps() -> None:
    t = Timing()
    # Run 0: 0..5, back-off 10 -> run 1: 15..20, back-off 20 -> run 2: 40..45.
    s = run_state(0, 5, 1, "Always", t, 17)
    assert (s.phase, s.restart_count, s.start, s.prev_start, s.prev_end) == ("Running", 1, 15, 0, 5)
    w = run_state(0, 5, 1, "Always", t, 30)
    assert (w.phase, w.restart_count) == ("Waiting", 2)
    # A day later the closed form still agrees with a step-by-step walk.
    now = 86_400.0
    k, start = 0, 0.0
    while True:
        nxt = start + 5 + t.backoff_s(k)
        if nxt > now:
            break
        k, start = k + 1, nxt
    far = run_state(0, 5, 1, "Always", t, now)
    assert far.run_index == k
    assert far.start == pytest.approx(start)


def test_on_failure_does_not_restart_success() -> None:
    t = Timing()
    assert run_state(0, 5, 0, "OnFailure", t, 100).phase == "Terminated"
    assert run_state(0, 5, 2, "OnFailure", t, 16).phase == "Running"


def test_time_scale_shortens_backoff() -> None:
    t = Timing(time_scale=0.01)
    assert t.backoff_s(0) == pytest.approx(0.1)
    assert t.pull_s(386.26) == pytest.approx(0.47)
