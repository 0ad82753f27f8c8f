"""A kube-apiserver older than 1.36, for the tests of the kubelet API's SPDY path.

API servers before 1.36 call the kubelet's ``/exec`` with SPDY/3.1 (1.36 proxies the client's
WebSocket). This one is built like the control plane from the Go module pinned in
``hack/controlplane-1.35`` into ``~/.cache/vk-eci/controlplane/<version>/bin/kube-apiserver``;
``vk-eci cluster build`` builds it too, and :func:`vk_eci.controlplane.cluster.up` runs it
with etcd (``apiserver=(version(), binary())``); kubectl stays the current one (one minor newer
is within the version-skew policy).
"""

from __future__ import annotations

from vk_eci.controlplane import build

BINARY = build.PinnedBinary(module="controlplane-1.35",
                            package="k8s.io/kubernetes/cmd/kube-apiserver",
                            requirement="k8s.io/kubernetes", name="kube-apiserver", subdir="bin")
version, binary, is_built, ensure_built = (BINARY.version, BINARY.binary, BINARY.is_built,
                                           BINARY.ensure_built)
