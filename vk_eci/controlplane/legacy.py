"""A kube-apiserver older than 1.36, for the tests of the kubelet API's SPDY path.

API servers before 1.36 call the kubelet's ``/exec`` with SPDY/3.1 (1.36 proxies the client's
WebSocket). This one is built like the control plane from the Go module pinned in
``hack/controlplane-1.35`` into ``~/.cache/vk-eci/controlplane/<version>/bin/kube-apiserver``;
``vk-eci cluster build`` builds it too, and :func:`vk_eci.controlplane.cluster.up` runs it
with etcd (``apiserver=(version(), binary())``); kubectl stays the current one (one minor newer
is within the version-skew policy).
"""

from __future__ import annotations

from pathlib import Path

from vk_eci.controlplane import build

MODULE = "controlplane-1.35"
PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"
NAME = "kube-apiserver"
RECIPE = "1"  # bump when the way the binary is built changes


def version() -> str:
    return build.pinned_version(MODULE, "k8s.io/kubernetes")


def binary() -> Path:
    return build.cache_root() / version() / "bin" / NAME


def _fingerprint() -> str:
    return build.stamp_of(MODULE, RECIPE)


def is_built() -> bool:
    return build.single_is_built(MODULE, binary(), RECIPE)


def ensure_built() -> Path:
    """Build the older kube-apiserver if missing or stale; its path. A no-op when built."""
    return build.ensure_single(MODULE, PACKAGE, binary(), version(), RECIPE)
