"""A container that runs for real: a process in its group's network namespace.

With ``--image-program IMAGE_PATTERN=PROGRAM`` an app container whose image matches the pattern
(``fnmatch``, e.g. ``python:*``) is not simulated: the emulator starts it as a process when the
group's plan starts it, inside the group's network namespace and a mount namespace of its own
(``ip netns exec`` gives both), with the container's environment, working directory and
volumes (ConfigFile and emptyDir volumes bind-mounted at their mount paths). Its stdout and
stderr are its log; its exit is the container's exit, and the group's restart policy restarts
it after the emulator's usual back-off.

Which program runs (:func:`argv_for`), with ``argv = command + args`` of the container:

- no command: ``PROGRAM args…`` (the image's entrypoint is the program);
- ``command[0]`` names the program (same base name once version digits are dropped:
  ``python3``/``python``/``/usr/local/bin/python3.12`` for ``/usr/bin/python3``, ``kube-proxy``
  for ``…/kube-proxy``): ``PROGRAM command[1:]… args…``;
- ``command[0]`` is a tool this machine has (``sh``, ``cat``, an absolute path that exists):
  the argv as given;
- anything else: ``PROGRAM argv…``.

Init containers stay simulated: only app containers run for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from vk_eci.emulator.clock import Clock
from vk_eci.emulator.lifecycle import RunState, restarts
from vk_eci.emulator.timing import Timing

IP = "/usr/sbin/ip"
NSENTER = "nsenter"
EXEC_TIMEOUT_S = 30.0    # a synchronous exec answers within the API call
MAX_LOG_LINES = 10_000   # per run: the oldest go first
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root"}
# Prepares the mounts in the private mount namespace ``ip netns exec`` made, then becomes
# the program. Positional parameters: the argv. MOUNTS / WORKDIR come from the environment.
_LAUNCH = r"""
set -e
printf '%s' "$VKECI_MOUNTS" | while IFS='	' read -r src dst ro; do
  [ -n "$dst" ] || continue
  if [ -d "$src" ]; then mkdir -p "$dst"
  else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : > "$dst"; fi
  mount --bind "$src" "$dst"
  if [ "$ro" = ro ]; then mount -o remount,bind,ro "$dst"; fi
done
unset VKECI_MOUNTS
if [ -n "$VKECI_WORKDIR" ]; then mkdir -p "$VKECI_WORKDIR"; cd "$VKECI_WORKDIR"; fi
unset VKECI_WORKDIR
exec "$@"
"""


@dataclass(frozen=True)
class ImagePrograms:
    """``(pattern, program)`` pairs, first match wins."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items: list[str]) -> ImagePrograms:
        """``["IMAGE_PATTERN=PROGRAM", …]``; raises ValueError naming the bad item."""
        rules = []
        for item in items:
            pattern, sep, program = item.partition("=")
            if not sep or not pattern.strip() or not program.strip():
                raise ValueError(f"--image-program {item!r}: expected IMAGE_PATTERN=PROGRAM, "
                                 "e.g. python:*=/usr/bin/python3")
            rules.append((pattern.strip(), program.strip()))
        return cls(tuple(rules))

    def program_for(self, image: str) -> str | None:
        tagged = image if ":" in image.rsplit("/", 1)[-1] else image + ":latest"
        for pattern, program in self.rules:
            if fnmatch.fnmatchcase(image, pattern) or fnmatch.fnmatchcase(tagged, pattern):
                return program
        return None


def _tool(name: str) -> str:
    return re.sub(r"[\d.]+$", "", name.rsplit("/", 1)[-1])


def argv_for(program: str, command: list[str], args: list[str]) -> list[str]:
    """What runs for a container of an image mapped to ``program`` (rules: module docstring)."""
    if not command:
        return [program, *args]
    if _tool(command[0]) == _tool(program):
        return [program, *command[1:], *args]
    if shutil.which(command[0]) is not None:
        return [*command, *args]
    return [program, *command, *args]


@dataclass(frozen=True)
class Mount:
    source: str      # a directory (or file) on the host prepared by the emulator
    target: str      # where the container sees it
    read_only: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    netns: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    mounts: tuple[Mount, ...] = ()

    def environ(self) -> dict[str, str]:
        return {**BASE_ENV, **dict(self.env)}


@dataclass
class Run:
    start: float
    end: float | None = None
    code: int | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)


class LiveContainer:
    """One container's process and its runs; ``on_change`` is called when its state changes
    (a start or an exit), so memoised answers about its group are dropped."""

    def __init__(self, spec: LaunchSpec, clock: Clock, timing: Timing, policy: str,
                 on_change: Callable[[], None]) -> None:
        self.spec, self.clock, self.timing, self.policy = spec, clock, timing, policy
        self.on_change = on_change
        self.runs: list[Run] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return None
        return self.proc.pid

    def start_in(self, delay: float) -> None:
        """Start the first run ``delay`` seconds from now (the plan's start)."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, delay), self._begin)

    def _begin(self) -> None:
        if not self.stopping and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="eci-live-container")

    async def _loop(self) -> None:
        k = 0
        while not self.stopping:
            run = Run(self.clock.now())
            self.runs.append(run)
            code = await self._one(run)
            run.end, run.code = self.clock.now(), code
            self.on_change()
            if self.stopping or not restarts(self.policy, code):
                return
            await asyncio.sleep(self.timing.backoff_s(k))
            k += 1

    async def _one(self, run: Run) -> int:
        env = self.spec.environ()
        env["VKECI_MOUNTS"] = "".join(f"{m.source}\t{m.target}\t{'ro' if m.read_only else 'rw'}\n"
                                      for m in self.spec.mounts)
        env["VKECI_WORKDIR"] = self.spec.workdir
        try:
            self.proc = await asyncio.create_subprocess_exec(
                IP, "netns", "exec", self.spec.netns, "sh", "-c", _LAUNCH, "sh",
                *self.spec.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        except OSError as e:
            run.lines.append((self.clock.now(), f"cannot start {self.spec.argv[0]}: {e}"))
            return 128
        self.on_change()
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            run.lines.append((self.clock.now(), line.decode(errors="replace").rstrip("\n")))
            if len(run.lines) > MAX_LOG_LINES:
                del run.lines[: len(run.lines) - MAX_LOG_LINES]
        code = await self.proc.wait()
        return 128 - code if code < 0 else code   # killed by signal N: 128+N, as a shell says

    def run_state(self) -> RunState | None:
        if not self.runs:
            return None
        k, last = len(self.runs) - 1, self.runs[-1]
        prev = self.runs[-2] if k > 0 else None
        prev_start = prev.start if prev else None
        prev_end = prev.end if prev else None
        prev_code = prev.code if prev else None
        if last.end is None:
            return RunState("Running", k, last.start, None, k, prev_start, prev_end,
                            runs_started=k + 1, backoffs=k, exit_code=None,
                            prev_exit_code=prev_code)
        code = last.code if last.code is not None else 0
        if not self.stopping and restarts(self.policy, code):
            return RunState("Waiting", k, last.start, last.end, k + 1, last.start, last.end,
                            runs_started=k + 1, backoffs=k + 1, last_backoff_at=last.end,
                            exit_code=code, prev_exit_code=code)
        return RunState("Terminated", k, last.start, last.end, k, prev_start, prev_end,
                        runs_started=k + 1, backoffs=k, exit_code=code, prev_exit_code=prev_code)

    def final(self) -> tuple[float, int] | None:
        """When and how it ended for good (no restart follows), if it has."""
        run = self.run_state()
        if run is None or run.phase != "Terminated" or run.end is None:
            return None
        return run.end, run.exit_code or 0

    def change_times(self) -> list[float]:
        return [t for r in self.runs for t in (r.start, r.end) if t is not None]

    def lines(self, previous: bool) -> list[tuple[float, str]]:
        if previous:
            return list(self.runs[-2].lines) if len(self.runs) > 1 else []
        return list(self.runs[-1].lines) if self.runs else []

    def terminate(self) -> None:
        """The group is being deleted: SIGTERM now, and no restart after."""
        self.stopping = True
        if self._timer is not None:
            self._timer.cancel()
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self.terminate()
        self._signal(signal.SIGKILL)
        if self._task is not None:
            self._task.cancel()

    def _signal(self, sig: int) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

    def exec_argv(self, command: list[str]) -> list[str] | None:
        """The argv that runs ``command`` in this container's namespaces, while it runs."""
        pid = self.pid
        if pid is None:
            return None
        return [NSENTER, "-t", str(pid), "-n", "-m", "--", *command]

    async def exec(self, command: list[str]) -> tuple[bytes, int]:
        """Run ``command`` inside (as ``ExecContainerCommand`` with ``Sync``): its output
        (stdout then stderr, interleaved as written) and exit code."""
        argv = self.exec_argv(command)
        if argv is None:
            return b"container is not running\n", 126
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self.spec.environ(), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), EXEC_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return b"command timed out\n", 124
        return out, proc.returncode if proc.returncode is not None else 0
