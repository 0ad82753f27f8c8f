"""The CoreDNS binary of ``vk-eci cluster up --cluster-dns``.

Built like the control plane from the Go module pinned in ``hack/coredns`` into
``~/.cache/vk-eci/coredns/<version>/bin/coredns``; ``vk-eci cluster build`` builds it too.
"""

from __future__ import annotations

import re
from pathlib import Path

from vk_eci.controlplane import build

MODULE = "coredns"
PACKAGE = "github.com/coredns/coredns"
NAME = "coredns"
RECIPE = "1"  # bump when the way the binary is built changes


def version() -> str:
    text = (build.HACK / MODULE / "go.mod").read_text()
    found = re.search(r"^\s*(?:require\s+)?github\.com/coredns/coredns\s+(v\S+)", text,
                      re.MULTILINE)
    if not found:
        raise build.BuildError(f"hack/{MODULE}/go.mod does not require github.com/coredns/coredns")
    return found.group(1)


def binary() -> Path:
    return build.cache_root().parent / MODULE / version() / "bin" / NAME


def is_built() -> bool:
    return build.single_is_built(MODULE, binary(), RECIPE)


def ensure_built() -> Path:
    """Build CoreDNS if missing or stale and return its path; a no-op when built."""
    return build.ensure_single(MODULE, PACKAGE, binary(), version(), RECIPE)
