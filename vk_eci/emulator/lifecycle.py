"""Restart cycles of one container, computed in closed form from its first start and ``now``.

Run ``k`` starts at ``s_k``; it lasts the program's duration ``D``; a restarting container waits
a back-off ``b_k = min(base * 2^k, max)`` before run ``k+1``. Once ``b_k`` is capped the cycle
has a fixed period, so finding the run at ``now`` costs O(1) however long the group has lived.
"""

from __future__ import annotations

from dataclasses import dataclass

from vk_eci.emulator.timing import Timing


@dataclass(frozen=True)
class RunState:
    """The container at ``now``. ``phase`` is Running, Terminated or Waiting (back-off)."""

    phase: str
    run_index: int
    start: float
    end: float | None        # end of the current (or last) run, if it has ended
    restart_count: int
    prev_start: float | None = None
    prev_end: float | None = None
    runs_started: int = 1
    backoffs: int = 0
    last_backoff_at: float | None = None
    # Exit codes of a container that runs for real (liveproc.py); None: the program's.
    exit_code: int | None = None
    prev_exit_code: int | None = None


def restarts(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def _starts(first: float, duration: float, timing: Timing, now: float) -> tuple[int, float]:
    """Index and start time of the last run that started at or before ``now``."""
    k, s = 0, first
    while True:
        b = timing.backoff_s(k)
        nxt = s + duration + b
        if nxt > now:
            return k, s
        k, s = k + 1, nxt
        if b >= timing.d(timing.backoff_max_s):
            period = duration + b
            if period <= 0:
                return k, s
            extra = int((now - s) // period)
            return k + extra, s + extra * period


def run_state(first: float, duration: float | None, exit_code: int, policy: str,
              timing: Timing, now: float) -> RunState:
    if duration is None:
        return RunState("Running", 0, first, None, 0)
    if not restarts(policy, exit_code):
        end = first + duration
        if now < end:
            return RunState("Running", 0, first, None, 0)
        return RunState("Terminated", 0, first, end, 0)
    k, s = _starts(first, duration, timing, now)
    prev_start = prev_end = None
    if k > 0:
        prev_start = _start_of(first, duration, timing, k - 1)
        prev_end = prev_start + duration
    end = s + duration
    if now < end:
        return RunState("Running", k, s, None, k, prev_start, prev_end, runs_started=k + 1,
                        backoffs=k, last_backoff_at=prev_end)
    return RunState("Waiting", k, s, end, k + 1, s, end, runs_started=k + 1, backoffs=k + 1,
                    last_backoff_at=end)


def _start_of(first: float, duration: float, timing: Timing, k: int) -> float:
    s = first
    for i in range(k):
        b = timing.backoff_s(i)
        if b >= timing.d(timing.backoff_max_s):
            return s + (k - i) * (duration + b)
        s += duration + b
    return s
