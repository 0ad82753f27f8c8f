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
    cold = re.search(r"without an image cache: Running after ([\d.]+)s", out)
    warm = re.search(r"from the image cache: Running after ([\d.]+)s", out)
    assert cold and warm, out
    # 50 s vs 5 s at ECI's pace, scaled: the cached start must be clearly faster.
    assert float(warm.group(1)) < float(cold.group(1))
    assert re.search(r"flink\s+\S+\s+imc-[a-z0-9]+\s+Ready\s+100%", out), out
    left = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    assert [line for line in left.stdout.splitlines() if "pgrep" not in line] == []
