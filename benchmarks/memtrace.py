"""Run ``python -m vk_eci ARGS`` under tracemalloc, for ``bench_memory.py``.

On SIGUSR1 the process collects garbage, writes a tracemalloc snapshot to
``$VK_ECI_SNAPSHOT_DIR/snap-N`` and then an empty ``snap-N.done`` (written last, so that the
reader never loads a snapshot half written). Usage: ``python benchmarks/memtrace.py run ...``.
"""

from __future__ import annotations

import gc
import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

tracemalloc.start(1)
_taken = [0]


def _snapshot(*_: Any) -> None:
    gc.collect()
    _taken[0] += 1
    out = Path(os.environ["VK_ECI_SNAPSHOT_DIR"]) / f"snap-{_taken[0]}"
    tracemalloc.take_snapshot().dump(str(out))
    out.with_suffix(".done").touch()


signal.signal(signal.SIGUSR1, _snapshot)
sys.argv = ["vk_eci", *sys.argv[1:]]
runpy.run_module("vk_eci", run_name="__main__", alter_sys=True)
