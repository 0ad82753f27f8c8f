"""What a container does, read from its command: so jobs, crashes and logs can be tested.

Understood statements: ``exit N``, ``sleep N``, ``true``, ``false``, ``echo …`` (a log line), joined
by ``;``, ``&&``, ``||`` or new lines, given directly (``Command=["sleep","5"]``) or through a shell
(``sh -c "echo hi; exit 3"``). Anything else runs until the group is deleted, as would a server.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_SHELLS = {"sh", "bash", "ash", "dash", "zsh"}
_SPLIT = re.compile(r"(;|&&|\|\||\n)")


@dataclass(frozen=True)
class Program:
    """``duration`` None means it never ends by itself."""

    lines: tuple[tuple[float, str], ...] = ()   # (offset from start, log line)
    duration: float | None = None
    exit_code: int = 0

    @property
    def finite(self) -> bool:
        return self.duration is not None


@dataclass
class _Run:
    t: float = 0.0
    code: int = 0
    lines: list[tuple[float, str]] = field(default_factory=list)


def _script_of(argv: list[str]) -> str | list[str] | None:
    """A shell script (str), a direct argv (list), or None for the image's own entrypoint."""
    if not argv:
        return None
    base = argv[0].rsplit("/", 1)[-1]
    if base in _SHELLS:
        for i, arg in enumerate(argv[1:], 1):
            if arg.startswith("-") and "c" in arg[1:] and i + 1 < len(argv):
                return argv[i + 1]
        return None  # an interactive shell: runs until deleted
    return argv


def _duration(arg: str) -> float | None:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", arg)
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _step(run: _Run, words: list[str]) -> bool | None:
    """Run one statement; False = program ended (exit), None = unknown (runs forever)."""
    if not words:
        return True
    cmd, args = words[0].rsplit("/", 1)[-1], words[1:]
    if cmd == "exit":
        try:
            run.code = int(args[0]) % 256 if args else run.code
        except ValueError:
            run.code = 2
        return False
    if cmd == "sleep":
        seconds = _duration(args[0]) if args else None
        if seconds is None:
            return None  # sleep infinity / bad argument: never ends
        run.t += seconds
        run.code = 0
        return True
    if cmd == "true" or cmd == ":":
        run.code = 0
        return True
    if cmd == "false":
        run.code = 1
        return True
    if cmd == "echo":
        if args and args[0] == "-n":
            args = args[1:]
        run.lines.append((run.t, " ".join(args)))
        run.code = 0
        return True
    return None


def parse(command: list[str], args: list[str]) -> Program:
    script = _script_of(list(command) + list(args))
    if script is None:
        return Program()
    run = _Run()
    if isinstance(script, list):
        outcome = _step(run, script)
        if outcome is None:
            return Program(tuple(run.lines), None)
        return Program(tuple(run.lines), run.t, run.code)
    op = ";"
    for token in _SPLIT.split(script):
        if token in (";", "&&", "||", "\n"):
            op = token
            continue
        if (op == "&&" and run.code != 0) or (op == "||" and run.code == 0):
            continue
        try:
            words = shlex.split(token)
        except ValueError:
            return Program(tuple(run.lines), None)
        outcome = _step(run, words)
        if outcome is None:
            return Program(tuple(run.lines), None)
        if outcome is False:
            break
    return Program(tuple(run.lines), run.t, run.code)


def exec_output(command: list[str]) -> tuple[str, int]:
    """What ``ExecContainerCommand`` prints: echo lines, and the exit code."""
    program = parse(command, [])
    text = "".join(line + "\n" for _, line in program.lines)
    return text, program.exit_code if program.finite else 0
