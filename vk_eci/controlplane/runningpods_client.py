"""A Go client of the kubelet API, built from ``hack/runningpods-client`` (client-go pinned there).

Tools written in Go reach a node through client-go's REST client, which cleans the path it is
given (``runningpods/`` arrives at the node as ``/runningpods``) and decodes the answer into typed
objects. Testing the node with Python or curl alone would miss both, so the integration tests
run this program. It is built like metrics-server, into
``~/.cache/vk-eci/runningpods-client/<client-go version>/bin``.
"""

from __future__ import annotations

import hashlib

from vk_eci.controlplane import build

MODULE = "runningpods-client"


def _recipe() -> str:
    # The program is ours, not a pinned module: its source is part of what a build depends on.
    return "1-" + hashlib.sha256((build.HACK / MODULE / "main.go").read_bytes()).hexdigest()[:12]


BINARY = build.PinnedBinary(module=MODULE, package=".", requirement="k8s.io/client-go",
                            name="runningpods-client", recipe=_recipe)
version, binary, ensure_built = BINARY.version, BINARY.binary, BINARY.ensure_built
