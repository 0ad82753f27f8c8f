"""The local cluster's DNS: CoreDNS for ``vk-eci cluster up --cluster-dns``.

Built like the control plane from the Go module pinned in ``hack/coredns`` into
``~/.cache/vk-eci/coredns/<version>/bin/coredns`` (``vk-eci cluster build`` builds it too).
:func:`start` runs it on the host end of the node network, its ``kubernetes`` plugin reading
the API server as the ``coredns`` service account (list/watch Services, EndpointSlices,
namespaces, as upstream's manifest), on port 53 when free, else on a free port. A ``kube-dns``
Service in ``kube-system`` with the fixed ClusterIP :data:`CLUSTER_DNS_IP` has no selector: its
EndpointSlice names CoreDNS on the host end at that port, so pods reach it through kube-proxy
like any Service; the address is written to ``DIR/cluster-dns-ip`` for the node's
``--cluster-dns``. The process is in the cluster's state: ``cluster down`` stops it.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import yaml

from vk_eci.controlplane import build
from vk_eci.controlplane.state import ClusterError, ControlPlane, start_process
from vk_eci.log import controlplane_logger as log

NAME = "coredns"
BINARY = build.PinnedBinary(module=NAME, package="github.com/coredns/coredns",
                            requirement="github.com/coredns/coredns", name=NAME)
version, binary, is_built, ensure_built = (BINARY.version, BINARY.binary, BINARY.is_built,
                                           BINARY.ensure_built)


# The kube-dns Service's address: inside the cluster's service range (cluster.SERVICE_CIDR,
# 10.0.0.0/24), tenth as kubeadm's.
CLUSTER_DNS_IP = "10.0.0.10"
IP_FILE = "cluster-dns-ip"

RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
"""


def _port(host: str) -> int:
    """53 when free for both UDP and TCP on ``host``, else a free port that is."""
    for wanted in (53, 0):
        udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
        try:
            tcp.bind((host, wanted))
            port = int(tcp.getsockname()[1])
            udp.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise ClusterError(f"no port free for both UDP and TCP on {host}")


def _corefile(cp: ControlPlane, kubeconfig: Path, port: int, domain: str) -> str:
    # No `forward`: names outside the cluster are not resolved (the test world has no route
    # out); a short cache so that a Service's change shows within seconds.
    return (f".:{port} {{\n    bind {cp.host}\n    errors\n"
            f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
            f"        kubeconfig {kubeconfig} {NAME}\n"
            "        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }\n"
            "    cache 5\n    loadbalance\n}\n")


def _routing(cp: ControlPlane, port: int) -> str:
    """The kube-dns Service at its fixed ClusterIP and its endpoint: CoreDNS on the host end."""
    labels = {"kubernetes.io/service-name": "kube-dns",
              "endpointslice.kubernetes.io/managed-by": "vk-eci.local-cluster"}
    names = (("dns", "UDP"), ("dns-tcp", "TCP"))
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system",
                      "labels": {"k8s-app": "kube-dns"}},
         "spec": {"clusterIP": CLUSTER_DNS_IP,
                  "ports": [{"name": n, "port": 53, "protocol": p, "targetPort": port}
                            for n, p in names]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "kube-dns-host", "namespace": "kube-system", "labels": labels},
         "addressType": "IPv4",
         "ports": [{"name": n, "port": port, "protocol": p} for n, p in names],
         "endpoints": [{"addresses": [cp.host], "conditions": {"ready": True}}]},
    ], sort_keys=False)


def start(cp: ControlPlane, *, domain: str = "cluster.local", timeout: float = 60) -> str:
    """Run CoreDNS as ``cp``'s cluster DNS (see the module docstring); returns the kube-dns
    ClusterIP, also written to ``DIR/cluster-dns-ip``. Its pid is in the cluster's state:
    ``cluster down`` stops it."""
    if cp.network is None:
        raise ClusterError("cluster DNS needs the node network (cluster up --node-network): a "
                           "Service's endpoint may not be a loopback address")
    path = ensure_built()
    directory, kubeconfig = cp.addon(NAME, RBAC)
    port = _port(cp.host)
    corefile = directory / "Corefile"
    corefile.write_text(_corefile(cp, kubeconfig, port, domain))
    proc = start_process(cp, NAME, [str(path), "-conf", str(corefile)])
    cp.kubectl("apply", "-f", "-", input=_routing(cp, port))
    deadline = time.monotonic() + timeout
    while not _answers(cp.host, port, f"kubernetes.default.svc.{domain}"):
        if proc.poll() is not None:
            tail = (cp.dir / "logs" / f"{NAME}.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"CoreDNS exited with {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise ClusterError(f"CoreDNS on {cp.host}:{port} did not answer within {timeout}s")
        time.sleep(0.3)
    (cp.dir / IP_FILE).write_text(CLUSTER_DNS_IP + "\n")
    log.info("cluster DNS up", extra={"pid": proc.pid, "port": port, "ip": CLUSTER_DNS_IP})
    return CLUSTER_DNS_IP


def _answers(host: str, port: int, name: str) -> bool:
    """Whether a DNS server at host:port answers an A query for ``name`` with an address."""
    query = struct.pack(">HHHHHH", 0x5645, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0" + \
        struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        try:
            s.sendto(query, (host, port))
            reply = s.recv(512)
        except OSError:
            return False
    # Same id, a response, no error code, at least one answer.
    return (len(reply) >= 12 and reply[:2] == query[:2] and reply[2] & 0x80 != 0
            and reply[3] & 0x0F == 0 and struct.unpack(">H", reply[6:8])[0] > 0)
