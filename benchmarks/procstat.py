"""CPU and memory of a live process, from /proc: what the node benchmarks charge to a node."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    cpu_seconds: float  # user + system
    rss: int  # bytes, now
    peak_rss: int  # bytes, VmHWM


def proc_stat(pid: int) -> ProcStat:
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    memory = {"VmRSS:": 0, "VmHWM:": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(maxsplit=1)[0] if line.strip() else ""
            if key in memory:
                memory[key] = int(line.split()[1]) * 1024
    return ProcStat((int(fields[11]) + int(fields[12])) / ticks, memory["VmRSS:"],
                    memory["VmHWM:"])
