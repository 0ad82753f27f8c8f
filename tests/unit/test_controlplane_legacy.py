"""The older kube-apiserver (SPDY exec tests): pinned below 1.36, cached per version beside the
current control plane, rebuilt when its pins change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vk_eci.controlplane import build, legacy


def test_pinned_below_1_36_and_cached_apart_from_the_current_control_plane(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert re.fullmatch(r"v1\.35\.\d+", legacy.version())
    monkeypatch.setenv("VK_ECI_CACHE", str(tmp_path))
    assert legacy.binary() == tmp_path / "controlplane" / legacy.version() / "bin" / \
        "kube-apiserver"
    assert legacy.binary().parent != build.toolset().bin_dir
    assert not legacy.is_built()
    legacy.binary().parent.mkdir(parents=True)
    legacy.binary().write_text("#!/bin/true\n")
    (legacy.binary().parent / ".fingerprint").write_text("0000000000000000\n")
    assert not legacy.is_built()   # pins changed: rebuild
    (legacy.binary().parent / ".fingerprint").write_text(legacy.BINARY.fingerprint() + "\n")
    assert legacy.is_built()
