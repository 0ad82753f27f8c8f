"""The control-plane build pins one Kubernetes release and rebuilds only when pins change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vk_eci.controlplane import build


def test_version_comes_from_go_mod() -> None:
    assert re.fullmatch(r"v1\.\d+\.\d+", build.kubernetes_version())


def test_staging_modules_replaced_by_published_versions() -> None:
    go_mod = (build.HACK / "controlplane" / "go.mod").read_text()
    minor_patch = build.kubernetes_version()[len("v1."):]
    replaced = re.findall(r"^\s*(k8s\.io/\S+) => (\S+) (v\S+)$", go_mod, re.MULTILINE)
    assert len(replaced) >= 30
    for module, target, version in replaced:
        assert module == target
        assert version == f"v0.{minor_patch}", module
    assert "./staging" not in go_mod


def test_cache_is_outside_the_repository_and_per_version(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("VK_ECI_CACHE", str(tmp_path))
    tools = build.toolset()
    assert tools.bin_dir == tmp_path / "controlplane" / tools.version / "bin"
    assert not build.is_built(tools)


def test_stale_fingerprint_means_rebuild(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VK_ECI_CACHE", str(tmp_path))
    tools = build.toolset()
    tools.bin_dir.mkdir(parents=True)
    for name in build.BINARIES:
        tools.path(name).write_text("#!/bin/true\n")
    (tools.bin_dir / ".fingerprint").write_text("0000000000000000\n")
    assert not build.is_built(tools)
    (tools.bin_dir / ".fingerprint").write_text(build._fingerprint() + "\n")
    assert build.is_built(tools)
    tools.path("helm").unlink()
    assert not build.is_built(tools)
