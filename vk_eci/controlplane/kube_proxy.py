"""The kube-proxy binary the emulator runs for the image the node injects into each group.

Built like the control plane from the Go module pinned in ``hack/kube-proxy`` — the same
Kubernetes release as ``hack/controlplane`` (a test keeps them equal) — into
``~/.cache/vk-eci/controlplane/<version>/kube-proxy/kube-proxy``; a module of its own, so that
adding it did not change the control plane's pins (and force every tree to rebuild those).
``vk-eci cluster build`` builds it too.
"""

from __future__ import annotations

from vk_eci.controlplane import build

BINARY = build.PinnedBinary(module="kube-proxy", package="k8s.io/kubernetes/cmd/kube-proxy",
                            requirement="k8s.io/kubernetes", name="kube-proxy",
                            subdir="kube-proxy")
version, binary, is_built, ensure_built = (BINARY.version, BINARY.binary, BINARY.is_built,
                                           BINARY.ensure_built)
