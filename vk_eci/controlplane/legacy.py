"""A kube-apiserver older than 1.36, for the tests of the kubelet API's SPDY path.

API servers before 1.36 call the kubelet's ``/exec`` with SPDY/3.1 (1.36 proxies the client's
WebSocket). This one is built like the control plane from the Go module pinned in
``hack/controlplane-1.35`` into ``~/.cache/vk-eci/controlplane/<version>/bin/kube-apiserver``;
``vk-eci cluster build`` builds it too, and :func:`vk_eci.controlplane.cluster.up` runs it
with etcd (``apiserver=(version(), binary())``); kubectl stays the current one (one minor newer
is within the version-skew policy).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

from vk_eci.controlplane import build
from vk_eci.log import controlplane_logger as log

MODULE = "controlplane-1.35"
PACKAGE = "k8s.io/kubernetes/cmd/kube-apiserver"
NAME = "kube-apiserver"
RECIPE = "1"  # bump when the way the binary is built changes


def version() -> str:
    text = (build.HACK / MODULE / "go.mod").read_text()
    found = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", text, re.MULTILINE)
    if not found:
        raise build.BuildError(f"hack/{MODULE}/go.mod does not require k8s.io/kubernetes")
    return found.group(1)


def binary() -> Path:
    return build.cache_root() / version() / "bin" / NAME


def _fingerprint() -> str:
    digest = hashlib.sha256(RECIPE.encode())
    for name in ("go.mod", "go.sum"):
        digest.update((build.HACK / MODULE / name).read_bytes())
    return digest.hexdigest()[:16]


def is_built() -> bool:
    path = binary()
    stamp = path.parent / ".fingerprint"
    return path.exists() and stamp.exists() and stamp.read_text().strip() == _fingerprint()


def ensure_built() -> Path:
    """Build the older kube-apiserver if missing or stale; its path. A no-op when built."""
    path = binary()
    if is_built():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = path.parent / f".{NAME}.tmp"
    build._go_build(MODULE, tmp, PACKAGE, f"{NAME} {version()}", version())
    tmp.replace(path)
    (path.parent / ".fingerprint").write_text(_fingerprint() + "\n")
    log.info("older kube-apiserver built", extra={"seconds": round(time.monotonic() - started,
                                                                    1)})
    return path
