"""The one way a benchmark reports: printed, and written to ``benchmarks/results/<name>.md``.

A :class:`Report` holds the run's context (machine, load average at start and end, versions,
the exact command), its tables and its goals. Goals are judged here, from the very figures
the tables print, and a missed goal is printed as MISSED; ``finish()`` prints the whole report
and writes the same text to the results file, which ``benchmarks/readme.py`` pastes into
``benchmarks/README.md`` unchanged (``tests/unit/test_benchmark_results.py`` checks that).

Usage::

    rep = Report("bench_node", __doc__)
    rep.table(["pods", "pods/s"], [["200", "26.5"]], title="Throughput")
    rep.goal("pods/s at 200 pods", 26.5, ">=", 20, unit="pods/s")
    rep.finish()
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Goal:
    what: str
    measured: float
    op: str
    target: float
    unit: str = ""

    @property
    def met(self) -> bool:
        return _OPS[self.op](self.measured, self.target)

    def line(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        verdict = "met" if self.met else "**MISSED**"
        return (f"- {self.what}: measured {_num(self.measured)}{unit}, goal {self.op} "
                f"{_num(self.target)}{unit}: {verdict}")


@dataclass
class Report:
    name: str
    description: str | None = None
    command: str = field(default_factory=lambda: shlex.join(
        [Path(sys.executable).name, *[_relative(a) for a in sys.argv]]))
    _parts: list[str] = field(default_factory=list)
    _goals: list[Goal] = field(default_factory=list)
    _load_start: tuple[float, float, float] = field(default_factory=os.getloadavg)
    _started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def text(self, line: str) -> None:
        """A paragraph of prose (what was measured, how)."""
        self._parts.append(line.rstrip() + "\n")

    def table(self, heads: Sequence[str], rows: Sequence[Sequence[object]],
              title: str | None = None) -> None:
        lines = [f"**{title}**\n"] if title else []
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|" + "---|" * len(heads))
        for row in rows:
            assert len(row) == len(heads), (heads, row)
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
        self._parts.append("\n".join(lines) + "\n")

    def goal(self, what: str, measured: float, op: str, target: float,
             unit: str = "") -> Goal:
        assert op in _OPS, op
        g = Goal(what, float(measured), op, float(target), unit)
        self._goals.append(g)
        return g

    @property
    def all_met(self) -> bool:
        return all(g.met for g in self._goals)

    def render(self) -> str:
        load_end = os.getloadavg()
        head = [f"### `{self.name}`\n",
                f"Command: `{self.command}`  ",
                f"Run: {self._started:%Y-%m-%d %H:%M} UTC, git {_git_commit()}  ",
                f"Machine: {_machine()}  ",
                f"Load average (1/5/15 min) at start {_load(self._load_start)}, "
                f"at end {_load(load_end)}  ",
                f"Versions: {_versions()}\n"]
        body = [*head, *self._parts]
        if self._goals:
            missed = sum(not g.met for g in self._goals)
            body.append(f"**Goals** ({len(self._goals) - missed} met, {missed} missed):\n")
            body.append("\n".join(g.line() for g in self._goals) + "\n")
        return "\n".join(body)

    def finish(self, write: bool = True) -> Path | None:
        """Print the report and write it to ``benchmarks/results/<name>.md``."""
        out = self.render()
        print(out)
        if not write:
            return None
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.md"
        path.write_text(out, encoding="utf-8")
        print(f"# written to {path.relative_to(ROOT)}", file=sys.stderr)
        return path


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or (x == int(x) and abs(x) >= 10) else f"{x:.3g}"


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in avg)


def _relative(arg: str) -> str:
    try:
        return str(Path(arg).resolve().relative_to(ROOT))
    except ValueError:
        return arg


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                       .splitlines() if line.startswith("MemTotal:"))
        mem = f"{mem_kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown memory"
    return f"{os.cpu_count()} cores ({cpu}), {mem}, {platform.system()} {platform.release()}"


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for dist in ("vk-eci", "numpy", "aiohttp", "kubernetes_asyncio", "alibabacloud-eci20180808"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(parts)


def _git_commit(root: Path = ROOT) -> str:
    """The short commit, ``-dirty`` when code differs from it. The benchmarks' own outputs (the
    result tables and the README they are pasted into) do not count: a run of several
    benchmarks one after another leaves the previous table changed, and the code is the same."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
             ".", ":!benchmarks/results", ":!benchmarks/README.md"],
            capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")
