"""Shared fixtures live in ``tests/fixtures/`` as plugins, one module per area.

Hypothesis profiles are registered here, once, before any test module is imported:
``ci`` is derandomized (the same examples on every run, so CI never fails by chance)
and prints the reproduction blob of a failure; ``dev`` keeps random exploration for
local runs. ``HYPOTHESIS_PROFILE`` picks one explicitly (``hack/test.sh`` exports
``ci``); otherwise a set ``CI`` variable means ``ci`` and anything else ``dev``.

The session ends by checking that no process of the test world outlived it (below).
"""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", derandomize=False, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

pytest_plugins = [
    "tests.fixtures.controlplane",
    "tests.fixtures.emulator",
    "tests.fixtures.node",
]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = _parent(pid)
        except (OSError, IndexError, ValueError):
            break
    return pids


def _with_descendants(pids: set[int]) -> set[int]:
    """``pids`` and every process below them (a shell's children need not name the path)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.isdigit():
                parents[int(entry)] = _parent(int(entry))
    found = set(pids)
    while grown := {pid for pid, parent in parents.items()
                    if parent in found and pid not in found}:
        found |= grown
    return found


def _survivors(root: str) -> dict[int, str]:
    """Live processes whose command line names a path under ``root`` (pid -> command line):
    this session's only (another session on this machine has its own base temp directory)."""
    found, mine = {}, _ancestors()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if root in cmdline and state != "Z":
            found[int(entry)] = cmdline.strip()
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The test world leaves nothing running: after every fixture's teardown (trylast: after
    pytest's own session teardown), no etcd, kube-apiserver, controller, metrics-server or
    `vk-eci` process started under this session's temporary directories may survive. Any that
    does fails the session, with the list, and is then killed so it does not outlive it."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if basetemp is None:    # no test used a temporary directory: nothing was started there
        return
    root = f"{basetemp}/"
    deadline = time.monotonic() + 3   # what teardown killed a moment ago may still be exiting
    while (left := _survivors(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not left:
        return
    lines = "\n".join(f"  pid {pid}: {cmd[:300]}" for pid, cmd in sorted(left.items()))
    print(f"\nFAILED: {len(left)} process(es) of the test world outlived the session:\n{lines}",
          file=sys.stderr, flush=True)
    for pid in _with_descendants(set(left)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
