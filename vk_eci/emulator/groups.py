"""The container-group model: a plan fixed at create time, states read lazily at ``now``.

At create the emulator lays out the whole start-up (scheduling, cache attach, each pull, each
init container, each app container start) on a timeline. A describe then only compares
timestamps with ``clock.now()`` and, for finished programs, computes restart cycles in closed
form (``lifecycle.py``), so a ManualClock advance moves every group without background tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from vk_eci.emulator.clock import iso
from vk_eci.emulator.lifecycle import RunState, restarts, run_state
from vk_eci.emulator.liveproc import LiveContainer
from vk_eci.emulator.placement import Placed
from vk_eci.emulator.programs import Program
from vk_eci.emulator.timing import Timing, go_duration


@dataclass
class Event:
    type: str
    reason: str
    message: str
    first: float
    last: float
    count: int = 1

    def render(self, name: str) -> dict[str, Any]:
        return {"Count": self.count, "Type": self.type, "Name": name, "Reason": self.reason,
                "Message": self.message, "FirstTimestamp": iso(self.first),
                "LastTimestamp": iso(self.last)}


@dataclass
class ContainerDef:
    name: str
    image: str
    cpu: float
    memory: float
    pull_policy: str
    command: list[str]
    args: list[str]
    program: Program
    raw: dict[str, Any]
    init: bool = False
    # Plan (filled by plan()): when its pull starts/ends, when it first starts.
    pull_start: float | None = None
    pull_end: float | None = None
    pull_error: str | None = None
    start: float | None = None
    # A container that runs for real (--image-program): its process decides its state.
    live: LiveContainer | None = None
    # Restarts before this definition's first start: an UpdateContainerGroup that replaced a
    # started container counts one more (update.py), on top of the restarts it had made.
    restarts_before: int = 0


@dataclass
class Group:
    id: str
    name: str
    region: str
    zone: str
    created: float
    cpu: float
    memory: float
    instance_type: str
    restart_policy: str
    tags: list[tuple[str, str]]
    containers: list[ContainerDef]
    init_containers: list[ContainerDef]
    raw: dict[str, Any]
    intranet_ip: str
    seq: int
    cache_id: str | None = None
    cache_images: frozenset[str] = frozenset()
    scheduled: float = 0.0
    running_at: float | None = None     # all app containers started
    failed_at: float | None = None      # an init container failed for good
    blocked_pull: ContainerDef | None = None
    grace_s: float = 30.0               # TerminationGracePeriodSeconds (ECI's default: 30)
    deleted_at: float | None = None     # DeleteContainerGroup accepted: Terminating from here
    gone_at: float | None = None        # ... until here, then the group no longer exists
    events: list[Event] = field(default_factory=list)
    placed: Placed | None = None        # zone, spot, addresses (see placement.py)
    static_render: dict[str, Any] | None = None   # memo of fields that never change
    # Memo of the rendered JSON: (valid from, valid until, with events, text).
    json_cache: tuple[float, float, bool, str] | None = None
    # Memo of the last change at or before a time: (that change, the next one after it).
    change_memo: tuple[float, float] | None = None
    # CPU in use as a share of each container's CPU, from a time on (set by a test through
    # /__emulator/usage); before the first entry it is DEFAULT_CPU_LOAD.
    cpu_load: list[tuple[float, float]] = field(default_factory=list)
    updated_at: float | None = None     # UpdateContainerGroup accepted (see update.py)
    updating_until: float | None = None  # ... Updating until the changed containers run

    def event(self, type_: str, reason: str, message: str, at: float) -> None:
        self.events.append(Event(type_, reason, message, at, at))


def plan(group: Group, timing: Timing, present: set[str],
         pull_errors: dict[str, str | None], sizes: dict[str, float], *,
         go_durations: bool = True) -> None:
    """Lay out the start-up. ``present`` holds normalised images already on the instance (from
    a cache); ``pull_errors`` maps an image to the registry's refusal, if any; pull events
    give durations as Go does (``1m41.289s``) or, with ``go_durations`` off, in seconds."""
    t = group.created
    group.scheduled = t = t + timing.d(timing.scheduling_s)
    group.event("Normal", "Scheduled", f"Successfully assigned {group.id} to eci", t)
    if group.cache_id is not None:
        t += timing.d(timing.cache_attach_s)
        group.event("Normal", "SuccessfulMountVolume", "MountVolume.SetUp succeeded for volume "
                    "\"image-cache\"", t)
    pulled: set[str] = set(present)
    for c in group.init_containers:
        t = _pull(group, c, t, timing, pulled, pull_errors, sizes, go_durations)
        if c.pull_error is not None:
            group.blocked_pull = c
            return
        t = _start(group, c, t, timing)
        prog = c.program
        if prog.duration is None:
            return  # an init container that never ends: the group stays Pending
        end = t + timing.d(prog.duration)
        if prog.exit_code != 0:
            if not restarts(group.restart_policy, prog.exit_code):
                group.failed_at = end
            return  # a failing, restarting init container crash-loops forever
        t = end
    for c in group.containers:
        t = _pull(group, c, t, timing, pulled, pull_errors, sizes, go_durations)
        if c.pull_error is not None:
            group.blocked_pull = c
            return
        t = _start(group, c, t, timing)
    group.running_at = t


def _pull(group: Group, c: ContainerDef, t: float, timing: Timing, pulled: set[str],
          pull_errors: dict[str, str | None], sizes: dict[str, float],
          go_durations: bool) -> float:
    key = c.raw["_norm"]
    if c.pull_policy == "Never" or (c.pull_policy != "Always" and key in pulled):
        group.event("Normal", "Pulled",
                    f"Container image \"{c.image}\" already present on machine", t)
        return t
    c.pull_start = t
    group.event("Normal", "Pulling", f"Pulling image \"{c.image}\"", t)
    error = pull_errors.get(key)
    if error is not None:
        c.pull_error = error
        at = t + timing.d(1.0)
        group.event("Warning", "Failed", f"Failed to pull image \"{c.image}\": {error}", at)
        group.event("Warning", "Failed", "Error: ErrImagePull", at)
        return at
    duration = timing.pull_s(sizes[key])
    c.pull_end = t + duration
    pulled.add(key)
    took = (f"{go_duration(duration)} ({go_duration(duration)} including waiting)"
            if go_durations else f"{duration:.3f}s")
    group.event("Normal", "Pulled", f"Successfully pulled image \"{c.image}\" in {took}",
                c.pull_end)
    return c.pull_end


def _start(group: Group, c: ContainerDef, t: float, timing: Timing) -> float:
    created = t
    c.start = t = t + timing.d(timing.container_start_s)
    group.event("Normal", "Created", f"Created container {c.name}", created)
    return t


def scaled(program: Program, timing: Timing) -> float | None:
    return None if program.duration is None else timing.d(program.duration)


def container_run(group: Group, c: ContainerDef, timing: Timing, now: float) -> RunState | None:
    """The container's run state, or None if it has not started by ``now``."""
    if c.live is not None:
        return c.live.run_state()
    expire = expired_at(group)
    if expire is not None and now > expire:
        # Reclaimed: what ran is killed at that moment and nothing starts again.
        run = container_run(group, c, timing, expire)
        if run is None or run.phase != "Running":
            return run
        return RunState("Terminated", run.run_index, run.start, expire, run.restart_count,
                        run.prev_start, run.prev_end, run.runs_started, run.backoffs,
                        run.last_backoff_at)
    if group.deleted_at is not None and now > group.deleted_at:
        # Stopping: nothing starts or restarts any more; a running program may still end.
        run = container_run(group, c, timing, group.deleted_at)
        d = scaled(c.program, timing)
        if run is None or run.phase != "Running" or d is None or now < run.start + d:
            return run
        return RunState("Terminated", run.run_index, run.start, run.start + d,
                        run.restart_count, run.prev_start, run.prev_end, run.runs_started,
                        run.backoffs, run.last_backoff_at)
    if c.start is None or now < c.start:
        return None
    if c.init:
        # Init containers that succeed run once; failing ones follow the restart policy.
        return run_state(c.start, scaled(c.program, timing), c.program.exit_code,
                         "Never" if c.program.exit_code == 0 else group.restart_policy,
                         timing, now)
    return run_state(c.start, scaled(c.program, timing), c.program.exit_code,
                     group.restart_policy, timing, now)


def end_time(group: Group, timing: Timing) -> tuple[float, bool] | None:
    """When every app container has ended for good, and whether all succeeded; None if never."""
    if group.running_at is None:
        return None
    last, ok = 0.0, True
    for c in group.containers:
        if c.live is not None:
            final = c.live.final()
            if final is None:
                return None
            last, ok = max(last, final[0]), ok and final[1] == 0
            continue
        d = scaled(c.program, timing)
        if d is None or c.start is None or restarts(group.restart_policy, c.program.exit_code):
            return None
        last = max(last, c.start + d)
        ok = ok and c.program.exit_code == 0
    return last, ok


def status(group: Group, timing: Timing, now: float) -> tuple[str, float | None]:
    """ECI status and, for a final one, when it was reached."""
    expire = expired_at(group)
    if expire is not None and now >= expire and (group.deleted_at is None
                                                 or group.deleted_at > expire):
        return "Expired", expire
    if group.deleted_at is not None and now >= group.deleted_at:
        return "Terminating", None
    if now < group.scheduled:
        return "Scheduling", None
    if group.updated_at is not None and group.updating_until is not None and \
            group.updated_at <= now < group.updating_until:
        return "Updating", None
    if group.failed_at is not None and now >= group.failed_at:
        return "Failed", group.failed_at
    if group.running_at is not None and now >= group.running_at:
        end = end_time(group, timing)
        if end is not None and now >= end[0]:
            return ("Succeeded" if end[1] else "Failed"), end[0]
        return "Running", None
    return "Pending", None


def expired_at(group: Group) -> float | None:
    """When a preempted spot group is (or will be) reclaimed."""
    return group.placed.expire_at if group.placed is not None else None


def dynamic_events(group: Group, timing: Timing, now: float) -> list[Event]:
    """Events whose count grows with time: container starts, back-offs, pull retries."""
    out: list[Event] = []
    for c in [*group.init_containers, *group.containers]:
        if c.pull_error is not None and c.pull_start is not None:
            first = c.pull_start + timing.d(1.0)
            if now >= first:
                n = 1 + int((now - first) // max(timing.d(timing.pull_retry_s), 1e-9))
                out.append(Event("Normal", "BackOff", f"Back-off pulling image \"{c.image}\"",
                                 first, first + (n - 1) * timing.d(timing.pull_retry_s), n))
                out.append(Event("Warning", "Failed", "Error: ImagePullBackOff", first,
                                 first + (n - 1) * timing.d(timing.pull_retry_s), n))
        run = container_run(group, c, timing, now)
        if run is None or c.start is None:
            continue
        out.append(Event("Normal", "Started", f"Started container {c.name}", c.start,
                         run.start, run.runs_started))
        if run.backoffs and run.last_backoff_at is not None:
            d = scaled(c.program, timing) or 0.0
            out.append(Event("Warning", "BackOff",
                             f"Back-off restarting failed container {c.name} in pod {group.name}",
                             c.start + d, run.last_backoff_at, run.backoffs))
    return out


def next_change(group: Group, timing: Timing, now: float) -> float:
    """The first time after ``now`` at which anything a describe shows can change."""
    if group.deleted_at is not None and now >= group.deleted_at:
        return _next_change_stopping(group, timing, now)
    cands = [t for t in (group.scheduled, group.running_at, group.failed_at, expired_at(group),
                         group.updating_until) if t is not None and t > now]
    end = end_time(group, timing)
    if end is not None and end[0] > now:
        cands.append(end[0])
    cands.extend(e.first for e in group.events if e.first > now)
    for c in [*group.init_containers, *group.containers]:
        if c.pull_error is not None and c.pull_start is not None:
            first = c.pull_start + timing.d(1.0)
            period = max(timing.d(timing.pull_retry_s), 1e-6)
            flip = c.pull_start + timing.d(timing.pull_retry_s)   # ErrImagePull -> BackOff
            if flip > now:
                cands.append(flip)
            retry = first if now < first else first + (int((now - first) // period) + 1) \
                * period
            if retry <= now:
                # Float rounding can land the step on ``now`` itself: the caller walks forward
                # from the answer, so an answer not after ``now`` would loop forever.
                retry += period
            cands.append(retry)
        if c.live is not None:
            cands.extend(t for t in c.live.change_times() if t > now)
            continue
        if c.start is None:
            continue
        if c.start > now:
            cands.append(c.start)
            continue
        run = container_run(group, c, timing, now)
        d = scaled(c.program, timing)
        if run is None or d is None:
            continue
        if run.phase == "Running":
            cands.append(run.start + d)
        elif run.phase == "Waiting" and run.end is not None:
            cands.append(run.end + timing.backoff_s(run.run_index))
    return min(cands, default=math.inf)


def _next_change_stopping(group: Group, timing: Timing, now: float) -> float:
    """While Terminating only a program ending by itself changes what a describe shows."""
    cands = [group.gone_at] if group.gone_at is not None and group.gone_at > now else []
    for c in [*group.init_containers, *group.containers]:
        if c.live is not None:
            cands.extend(t for t in c.live.change_times() if t > now)
            continue
        run = container_run(group, c, timing, now)
        d = scaled(c.program, timing)
        if run is not None and run.phase == "Running" and d is not None and run.start + d > now:
            cands.append(run.start + d)
    return min(cands, default=math.inf)


def stop(group: Group, timing: Timing, now: float) -> float:
    """Accept a delete at ``now``: the group goes Terminating and is gone when its grace period
    ends or every running container has ended by itself, whichever comes first. Returns when
    it is gone (``now`` if nothing was running). A second delete changes nothing."""
    if group.gone_at is not None:
        return group.gone_at
    st, _ = status(group, timing, now)
    ends = []
    if st not in ("Succeeded", "Failed"):
        for c in [*group.init_containers, *group.containers]:
            run = container_run(group, c, timing, now)
            if run is None or run.phase != "Running":
                continue
            d = scaled(c.program, timing)
            ends.append(run.start + d if d is not None else math.inf)
            group.event("Normal", "Killing", f"Stopping container {c.name}", now)
    group.deleted_at = now
    group.gone_at = min(max(ends, default=now), now + timing.d(group.grace_s))
    group.json_cache = None   # the memo was valid "until the next change"; this is one
    group.change_memo = None
    return group.gone_at


def all_events(group: Group, timing: Timing, now: float) -> list[Event]:
    if group.deleted_at is not None:
        # Frozen at the delete: no more starts, back-offs or pull retries are counted.
        now = min(now, group.deleted_at)
    events = [e for e in group.events if e.first <= now]
    events.extend(dynamic_events(group, timing, now))
    events.sort(key=lambda e: e.first)
    return events


def logs(group: Group, c: ContainerDef, timing: Timing, now: float,
         previous: bool) -> list[tuple[float, str]]:
    """Log lines (time, text) of the current run, or of the previous one."""
    if c.live is not None:
        return c.live.lines(previous)
    run = container_run(group, c, timing, now)
    if run is None:
        return []
    if previous:
        if run.prev_start is None:
            return []
        start, end = run.prev_start, run.prev_end
    else:
        start, end = run.start, (run.end if run.end is not None else now)
    assert end is not None
    lines = [(start + timing.d(off), text) for off, text in c.program.lines]
    return [(t, text) for t, text in lines if t <= min(end, now)]
