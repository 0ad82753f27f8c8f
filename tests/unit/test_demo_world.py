"""The demo's cluster DNS on a machine where CoreDNS is not built yet (a first run): the node is
told the kube-dns Service's IP at once, and CoreDNS is left to build in the background."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from vk_eci import demo_world
from vk_eci.controlplane import cluster_dns


def test_a_first_run_gives_the_node_the_dns_ip_before_coredns_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VK_ECI_CACHE", str(tmp_path / "empty-cache"))  # nothing built here
    assert not cluster_dns.is_built()
    cp: object = SimpleNamespace(network=object(), dir=tmp_path)
    assert demo_world.start_cluster_dns(cp) == demo_world.BUILDING_DNS  # type: ignore[arg-type]
    assert demo_world.cluster_dns_flag(tmp_path) == ["--cluster-dns", cluster_dns.CLUSTER_DNS_IP]


def test_no_node_network_means_no_cluster_dns(tmp_path: Path) -> None:
    cp: object = SimpleNamespace(network=None, dir=tmp_path)
    assert demo_world.start_cluster_dns(cp) == "no node network"  # type: ignore[arg-type]
    assert demo_world.cluster_dns_flag(tmp_path) == []
