"""The node's API client reads the environment once, not on every request."""

from __future__ import annotations

from pathlib import Path

import pytest

from vk_eci.cluster.kube.api import api_client

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "http://apiserver.example:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


async def test_session_does_not_look_up_the_environment_per_request(kubeconfig: Path) -> None:
    api = await api_client(kubeconfig)
    async with api:
        assert api.rest_client.pool_manager.trust_env is False
        assert not api.rest_client.proxy


async def test_environment_proxy_is_still_used(kubeconfig: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.example:3128")
    api = await api_client(kubeconfig)
    async with api:
        assert api.rest_client.proxy == "http://proxy.example:3128"
        assert api.rest_client.proxy_headers["Proxy-Authorization"].startswith("Basic ")


async def test_no_proxy_is_honoured(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "apiserver.example")
    api = await api_client(kubeconfig)
    async with api:
        assert not api.rest_client.proxy
