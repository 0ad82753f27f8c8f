"""Hypothesis is deterministic in CI and random locally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import tests.conftest\n"
    "from hypothesis import settings\n"
    "d = settings.default\n"
    "print(settings.get_current_profile_name(), d.derandomize, d.print_blob, d.deadline)\n"
)


def _profile(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, check=True, timeout=60,
    )
    return out.stdout.split()


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"CI": "true"}, ["ci", "True", "True", "None"]),
        ({"HYPOTHESIS_PROFILE": "ci"}, ["ci", "True", "True", "None"]),
        ({}, ["dev", "False", "True"]),
    ],
)
def test_profile_follows_the_environment(env: dict[str, str], want: list[str]) -> None:
    assert _profile(**env)[: len(want)] == want


def test_ci_script_selects_the_ci_profile() -> None:
    script = (ROOT / "hack" / "test.sh").read_text()
    assert 'export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"' in script
    assert script.index("HYPOTHESIS_PROFILE") < script.index("python3 -m pytest")
