"""A Go client of the kubelet API, built from ``hack/runningpods-client`` (client-go pinned there).

Tools written in Go reach a node through client-go's REST client, which cleans the path it is
given (``runningpods/`` arrives at the node as ``/runningpods``) and decodes the answer into typed
objects. Testing the node with Python or curl alone would miss both, so the integration tests
run this program. It is built like metrics-server, into
``~/.cache/vk-eci/runningpods-client/<client-go version>/bin``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vk_eci.controlplane import build

MODULE = "runningpods-client"
NAME = "runningpods-client"


def version() -> str:
    """The client-go release pinned in the module's go.mod."""
    return build.pinned(MODULE, "k8s.io/client-go")


def _recipe() -> str:
    # The program is ours, not a pinned module: its source is part of what a build depends on.
    return "1-" + hashlib.sha256((build.HACK / MODULE / "main.go").read_bytes()).hexdigest()[:12]


def binary() -> Path:
    return build.cache_root().parent / MODULE / version() / "bin" / NAME


def ensure_built() -> Path:
    """Build the client if missing or stale and return its path; a no-op when up to date."""
    return build.ensure_single(MODULE, ".", binary(), version(), _recipe())
