"""CoreDNS for the local cluster (vk_eci/controlplane/cluster_dns.py): pinned and cached like the
control plane, its Service in the service range pointing at the host end, and a DNS probe that
tells an answer from silence."""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path

import pytest
import yaml

from vk_eci.controlplane import cluster, cluster_dns, commands
from vk_eci.controlplane.state import ControlPlane


def test_pinned_and_cached_apart_from_the_control_plane(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    assert cluster_dns.version().startswith("v1.")
    monkeypatch.setenv("VK_ECI_CACHE", str(tmp_path))
    assert cluster_dns.binary() == tmp_path / "coredns" / cluster_dns.version() / "bin" / \
        "coredns"
    assert not cluster_dns.is_built()


def test_kube_dns_service_in_the_service_range_with_the_host_end_as_endpoint() -> None:
    cp = ControlPlane(dir=Path("/x"), version="v1.36.3", ports={}, host="10.250.0.1")
    service, slice_ = yaml.safe_load_all(cluster_dns._routing(cp, 1053))
    assert ipaddress.ip_address(service["spec"]["clusterIP"]) in \
        ipaddress.ip_network(cluster.SERVICE_CIDR)
    assert "selector" not in service["spec"]
    assert {(p["port"], p["protocol"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (53, "UDP", 1053), (53, "TCP", 1053)}
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert slice_["endpoints"][0]["addresses"] == ["10.250.0.1"]
    assert {p["port"] for p in slice_["ports"]} == {1053}


def test_probe_needs_an_answer(tmp_path: Path) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer(answers: int) -> None:
        query, peer = server.recvfrom(512)
        header = query[:2] + b"\x81\x80" + query[4:6] + answers.to_bytes(2, "big") + b"\0\0\0\0"
        server.sendto(header + query[12:], peer)

    for answers, expected in ((1, True), (0, False)):
        thread = threading.Thread(target=answer, args=(answers,))
        thread.start()
        assert cluster_dns._answers("127.0.0.1", port, "kubernetes.default.svc") is expected
        thread.join()
    server.close()
    assert cluster_dns._answers("127.0.0.1", port, "x") is False  # nobody listens: no answer


def test_cluster_dns_needs_the_node_network(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.cli_up(tmp_path, with_cluster_dns=True) == 2
    assert "--cluster-dns needs --node-network" in capsys.readouterr().err
