"""metrics-server for the local control plane: ``kubectl top`` and HPAs on the virtual node.

Built like the control plane from the Go module pinned in ``hack/metrics-server`` into
``~/.cache/vk-eci/metrics-server/<version>/bin`` (``vk-eci cluster build`` builds it too).
``start`` runs it as kind and minikube do (``--kubelet-insecure-tls``,
``--kubelet-preferred-address-types=InternalIP``; the kubelet's port from the Node's status),
with upstream's own RBAC and ServiceAccount (a bound token is its identity), and registers the
``v1beta1.metrics.k8s.io`` APIService behind a selector-less Service whose EndpointSlice names
the API server's host address. Endpoints may not be loopback, so this needs the node network
(``vk-eci cluster up --node-network``). The process is recorded in the cluster's state, so
``cluster down`` stops it. Synchronous code (CLI and pytest fixtures).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import yaml

from vk_eci.controlplane import build
from vk_eci.controlplane.state import ClusterError, ControlPlane, start_process
from vk_eci.log import controlplane_logger as log

MODULE = "metrics-server"
PACKAGE = "sigs.k8s.io/metrics-server/cmd/metrics-server"
NAME = "metrics-server"
# Bump when the way the binary is built changes, to force a rebuild.
RECIPE = "1"
# metrics-server's floor; HPAs and `kubectl top` see a new figure this often.
RESOLUTION = "10s"

RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: metrics-server, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:aggregated-metrics-reader
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: metrics-server-auth-reader, namespace: kube-system}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: extension-apiserver-authentication-reader
subjects: [{kind: ServiceAccount, name: metrics-server, namespace: kube-system}]
"""


def version() -> str:
    return build.pinned(MODULE, "sigs.k8s.io/metrics-server")


def binary() -> Path:
    return build.cache_root().parent / MODULE / version() / "bin" / NAME


def _fingerprint() -> str:
    return build.stamp_of(MODULE, RECIPE)


def is_built() -> bool:
    return build.single_is_built(MODULE, binary(), RECIPE)


def ensure_built() -> Path:
    """Build metrics-server if missing or stale and return its path; a no-op when up to date."""
    return build.ensure_single(MODULE, PACKAGE, binary(), version(), RECIPE)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _routing(cp: ControlPlane, port: int) -> str:
    """The APIService and where the API server finds metrics-server (no kube-proxy here)."""
    labels = {"kubernetes.io/service-name": NAME,
              "endpointslice.kubernetes.io/managed-by": "vk-eci.local-cluster"}
    docs = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": "kube-system"},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{NAME}-host", "namespace": "kube-system", "labels": labels},
         "addressType": "IPv4",
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
         "endpoints": [{"addresses": [cp.host], "conditions": {"ready": True}}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.metrics.k8s.io"},
         # As upstream's manifest: the API server does not verify metrics-server's
         # self-signed serving certificate.
         "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                  "insecureSkipTLSVerify": True, "groupPriorityMinimum": 100,
                  "versionPriority": 100,
                  "service": {"name": NAME, "namespace": "kube-system", "port": 443}}},
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def start(cp: ControlPlane, *, timeout: float = 90) -> int:
    """Start metrics-server for ``cp`` and return once ``metrics.k8s.io`` is served; returns
    its pid (recorded in the cluster's state: ``cluster down`` stops it)."""
    if cp.network is None:
        raise ClusterError("metrics-server needs the node network (cluster up --node-network): "
                           "the API server cannot route an APIService to a loopback address")
    path = ensure_built()
    directory, kubeconfig = cp.addon(NAME, RBAC)  # its identity: the upstream account
    port = _free_port(cp.host)
    proc = start_process(cp, NAME, [
        str(path), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={cp.host}",
        f"--secure-port={port}", f"--cert-dir={directory / 'certs'}",
        # What kind and minikube add: kubelets serve self-signed certificates, and are
        # reached at their InternalIP on the port their Node status gives.
        "--kubelet-insecure-tls", "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port", f"--metric-resolution={RESOLUTION}",
        # Under 9/10 of the resolution, as metrics-server requires.
        "--kubelet-request-timeout=5s", "--v=1"])
    cp.kubectl("apply", "-f", "-", input=_routing(cp, port))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = (cp.dir / "logs" / f"{NAME}.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"metrics-server exited with {proc.returncode}:\n{tail}")
        got = cp.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1", check=False,
                         timeout=10)
        if got.returncode == 0:
            log.info("metrics-server up", extra={"pid": proc.pid, "port": port})
            return proc.pid
        if time.monotonic() > deadline:
            raise ClusterError(f"metrics.k8s.io not served after {timeout}s: "
                               f"{got.stderr.strip()}")
        time.sleep(0.5)
