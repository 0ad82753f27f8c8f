"""The kube-proxy binary the emulator runs for the image the node injects into each group.

Built like the control plane from the Go module pinned in ``hack/kube-proxy`` — the same
Kubernetes release as ``hack/controlplane`` (a test keeps them equal) — into
``~/.cache/vk-eci/controlplane/<version>/kube-proxy/kube-proxy``; a module of its own, so that
adding it did not change the control plane's pins (and force every tree to rebuild those).
``vk-eci cluster build`` builds it too.
"""

from __future__ import annotations

from pathlib import Path

from vk_eci.controlplane import build

MODULE = "kube-proxy"
PACKAGE = "k8s.io/kubernetes/cmd/kube-proxy"
NAME = "kube-proxy"
RECIPE = "1"  # bump when the way the binary is built changes


def version() -> str:
    return build.pinned(MODULE, "k8s.io/kubernetes")


def binary() -> Path:
    return build.cache_root() / version() / MODULE / NAME


def is_built() -> bool:
    return build.single_is_built(MODULE, binary(), RECIPE)


def ensure_built() -> Path:
    """Build kube-proxy if missing or stale and return its path; a no-op when built."""
    return build.ensure_single(MODULE, PACKAGE, binary(), version(), RECIPE)
