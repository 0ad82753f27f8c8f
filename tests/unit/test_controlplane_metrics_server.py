"""metrics-server: pinned in hack/metrics-server, cached per version, routed by an EndpointSlice
to the node network's host address, refused without a node network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vk_eci.controlplane import metrics_server as ms
from vk_eci.controlplane.commands import cli_up
from vk_eci.controlplane.netns import NodeNetwork
from vk_eci.controlplane.state import ClusterError, ControlPlane


def test_version_comes_from_go_mod_and_binary_is_cached_per_version(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert re.fullmatch(r"v0\.\d+\.\d+", ms.version())
    monkeypatch.setenv("VK_ECI_CACHE", str(tmp_path))
    assert ms.binary() == tmp_path / "metrics-server" / ms.version() / "bin" / "metrics-server"
    assert not ms.is_built()
    ms.binary().parent.mkdir(parents=True)
    ms.binary().write_text("#!/bin/true\n")
    (ms.binary().parent / ".fingerprint").write_text("0000000000000000\n")
    assert not ms.is_built()   # pins changed: rebuild
    (ms.binary().parent / ".fingerprint").write_text(ms._fingerprint() + "\n")
    assert ms.is_built()


def _cp(tmp_path: Path, network: bool) -> ControlPlane:
    net = NodeNetwork(netns="vkeci-x", host_link="vkexh", node_link="vkexn",
                      host_ip="10.250.0.5", node_ip="10.250.0.6") if network else None
    return ControlPlane(dir=tmp_path, version="v1.36.3", ports={"apiserver": 6443},
                        host=net.host_ip if net else "127.0.0.1", network=net)


def test_routing_points_the_apiservice_at_the_host_address(tmp_path: Path) -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(ms._routing(_cp(tmp_path, True), 4443))}
    service, slice_, api = docs["Service"], docs["EndpointSlice"], docs["APIService"]
    assert "selector" not in service["spec"]   # no pods here: the slice is ours
    [port] = service["spec"]["ports"]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == service["metadata"]["name"]
    assert slice_["ports"] == [{"name": port["name"], "port": 4443, "protocol": "TCP"}]
    assert slice_["endpoints"][0]["addresses"] == ["10.250.0.5"]
    assert api["metadata"]["name"] == "v1beta1.metrics.k8s.io"
    assert api["spec"]["service"] == {"name": service["metadata"]["name"],
                                      "namespace": "kube-system", "port": port["port"]}


def test_needs_a_node_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ClusterError, match="node network"):
        ms.start(_cp(tmp_path, False))
    assert cli_up(tmp_path, node_network=False, with_metrics_server=True) == 2
    assert "--metrics-server needs --node-network" in capsys.readouterr().err
