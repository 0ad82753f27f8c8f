"""The README's main command, `vk-eci demo`, runs the whole product and cleans up after itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_flink_with_and_without_cache_and_stops_everything(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "vk_eci", "demo", "--once", "--dir", str(directory),
         "--time-scale", "0.02"],
        capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "virtual node `virtual-kubelet` is Ready" in out
    cold = re.search(r"without an image cache: Running after ([\d.]+)s in ECI time "
                     r"\(([\d.]+)s wall", out)
    warm = re.search(r"from the image cache: Running after ([\d.]+)s in ECI time "
                     r"\(([\d.]+)s wall\) \(([\d.]+)x faster", out)
    assert cold and warm, out
    # 50 s vs 5 s at ECI's pace plus what the node and Kubernetes add (about a second, since
    # the node polls what changed): the cached start is clearly faster, in both clocks.
    assert float(warm.group(3)) >= 5, out
    assert float(warm.group(2)) < float(cold.group(2))
    assert 45 < float(cold.group(1)) < 60, out
    assert re.search(r"flink\s+\S+\s+imc-[a-z0-9]+\s+Ready\s+100%", out), out
    left = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    assert [line for line in left.stdout.splitlines() if "pgrep" not in line] == []
