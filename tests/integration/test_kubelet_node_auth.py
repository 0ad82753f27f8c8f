"""Attacks on the kubelet API of a running node (``vk-eci run`` in the control plane's node
network, authentication and authorisation by the real API server, pods in the ECI emulator):

- every kubelet path needs exactly the node subresource the real kubelet asks
  for (``nodes/proxy`` for container logs, exec, attach, port-forward; ``nodes/stats``,
  ``nodes/metrics``; ``nodes/log`` for ``/logs/`` only; ``nodes/pods`` or proxy for the pod
  lists), whatever else the caller holds;
- item 8: two client identities that differ only by where a separator falls never share an
  authorisation decision; the serving certificate is reloaded when its files change;
- item 4: the per-user and per-node session caps hold for callers with their own tokens.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, NodeProcess, eventually
from vk_eci.controlplane import pki

pytestmark = pytest.mark.integration

# Path (method) → the node subresources that may allow it, as the kubelet's
# GetRequestAttributes (pkg/kubelet/server/auth.go) decides.
PATHS: list[tuple[str, str, set[str]]] = [
    ("GET", "/containerLogs/{ns}/web/main", {"proxy"}),
    ("POST", "/exec/{ns}/web/main?command=true&stdout=true", {"proxy"}),
    ("POST", "/attach/{ns}/web/main?stdout=true", {"proxy"}),
    ("POST", "/portForward/{ns}/web", {"proxy"}),
    ("GET", "/runningpods/", {"pods", "proxy"}),
    ("GET", "/pods", {"pods", "proxy"}),
    ("GET", "/healthz", {"healthz", "proxy"}),
    ("GET", "/stats/summary", {"stats"}),
    ("GET", "/metrics/resource", {"metrics"}),
    ("GET", "/logs/", {"log"}),
]
GRANTS = ("proxy", "log", "stats", "metrics", "pods")


def kubelet_url(node: NodeProcess) -> str:
    return f"https://{node.host}:{node.argv[node.argv.index('--kubelet-port') + 1]}"


def _tls(cert: pki.KeyPair | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


async def call(method: str, url: str, *, token: str | None = None,
               cert: pki.KeyPair | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, \
            http.request(method, url, headers=headers, ssl=_tls(cert)) as resp:
        return resp.status, (await resp.text())[:300]


async def kubectl(cp: Any, *args: str, stdin: str | None = None) -> str:
    out = await asyncio.to_thread(cp.kubectl, *args, input=stdin)
    return str(out.stdout).strip()


async def grant(cp: Any, ns: str, name: str, subresources: list[str], subject: dict[str, str],
                ) -> None:
    """A ClusterRole of get+create on ``nodes/<subresources>`` bound to ``subject``."""
    role = f"{ns}-{name}"
    items = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role, "labels": {"test": ns}},
         "rules": [{"apiGroups": [""], "resources": [f"nodes/{s}" for s in subresources],
                    "verbs": ["get", "create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role, "labels": {"test": ns}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": role},
         "subjects": [subject]}]
    await kubectl(cp, "apply", "-f", "-",
                  stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


async def token_with(cp: Any, ns: str, sa: str, subresources: list[str]) -> str:
    await kubectl(cp, "create", "serviceaccount", sa, "-n", ns)
    await grant(cp, ns, sa, subresources,
                {"kind": "ServiceAccount", "name": sa, "namespace": ns})
    return await kubectl(cp, "create", "token", sa, "-n", ns)


@pytest_asyncio.fixture
async def rbac_cleanup(control_plane: Any, namespace: str) -> AsyncIterator[None]:
    yield
    await asyncio.to_thread(control_plane.kubectl, "delete", "clusterrole,clusterrolebinding",
                            "-l", f"test={namespace}", check=False)


async def running_pod(kube_api: client.ApiClient, node: NodeProcess, ns: str,
                      name: str = "web") -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
            node_name=node.name, containers=[client.V1Container(
                name="main", image="busybox:1.36",
                command=["sh", "-c", "echo hello; sleep infinity"])])))

    async def running() -> bool:
        p = await core.read_namespaced_pod(name, ns)
        return bool(p.status and p.status.phase == "Running")

    await eventually(running, 60, f"{ns}/{name} Running", node)


async def test_every_kubelet_path_needs_exactly_the_kubelets_subresource(
        node_factory: NodeFactory, control_plane: Any, kube_api: client.ApiClient,
        namespace: str, rbac_cleanup: None) -> None:
    node = await node_factory()
    await running_pod(kube_api, node, namespace)
    url = kubelet_url(node)
    tokens = {sub: await token_with(control_plane, namespace, f"only-{sub}", [sub])
              for sub in GRANTS}
    wrong: list[str] = []
    for method, path, allowed_by in PATHS:
        target = url + path.format(ns=namespace)
        for sub, token in tokens.items():
            status, body = await call(method, target, token=token)
            if (status != 403) != (sub in allowed_by):
                wrong.append(f"{method} {path} with nodes/{sub}: {status} {body[:80]!r}")
            if status == 403:  # the refusal names the caller and what it lacked
                assert f":only-{sub}' may not" in body and "nodes/" in body, body
    assert wrong == [], "\n".join(wrong)
    # And the one a container's log needs does read it (the allowed answers are real ones).
    status, body = await call("GET", f"{url}/containerLogs/{namespace}/web/main",
                              token=tokens["proxy"])
    assert (status, body) == (200, "hello\n")
    assert (await call("GET", f"{url}/stats/summary", token=tokens["stats"]))[0] == 200


async def test_identities_differing_only_by_a_separator_never_share_a_decision(
        node_factory: NodeFactory, control_plane: Any, kube_api: client.ApiClient,
        namespace: str, rbac_cleanup: None, tmp_path: Path) -> None:
    """Client certificates of the cluster CA (as a CSR to the kube-apiserver-client signer
    gives): RBAC lets group ``ops`` proxy to the node. Alice in groups ``ops`` and ``x`` is
    allowed; a certificate for alice in the one group ``ops,x`` is not, and must not inherit
    the first one's cached decision (their old cache keys were both ``alice|ops,x,…``)."""
    node = await node_factory()
    await running_pod(kube_api, node, namespace)
    ops = f"ops-{namespace}"
    await grant(control_plane, namespace, "ops", ["proxy"],
                {"kind": "Group", "name": ops, "apiGroup": "rbac.authorization.k8s.io"})
    ca = pki.KeyPair(control_plane.dir / "pki" / "ca.crt", control_plane.dir / "pki" / "ca.key")
    member = pki.issue(ca, tmp_path, "member", cn="alice", org=(ops, "x"))
    outsider = pki.issue(ca, tmp_path, "outsider", cn="alice", org=(f"{ops},x",))
    logs = f"{kubelet_url(node)}/containerLogs/{namespace}/web/main"
    assert await call("GET", logs, cert=member) == (200, "hello\n")
    status, body = await call("GET", logs, cert=outsider)
    assert status == 403 and "nodes/proxy" in body, (status, body)
    # The other way round too: a cached denial does not refuse the member.
    other = pki.issue(ca, tmp_path, "other", cn="bob", org=(f"{ops},y",))
    bob = pki.issue(ca, tmp_path, "bob", cn="bob", org=(ops, "y"))
    assert (await call("GET", logs, cert=other))[0] == 403
    assert await call("GET", logs, cert=bob) == (200, "hello\n")


async def test_callers_with_their_own_tokens_are_held_by_the_user_and_node_caps(
        node_factory: NodeFactory, control_plane: Any, kube_api: client.ApiClient,
        namespace: str, rbac_cleanup: None) -> None:
    """Direct callers (``nodes/proxy`` tokens): at most 2 follows each, 3 on the node."""
    node = await node_factory(kubelet_max_sessions="3", kubelet_max_sessions_per_user="2")
    await running_pod(kube_api, node, namespace)
    alice = await token_with(control_plane, namespace, "alice", ["proxy"])
    bob = await token_with(control_plane, namespace, "bob", ["proxy"])
    follow = f"{kubelet_url(node)}/containerLogs/{namespace}/web/main?follow=true"
    async with aiohttp.ClientSession() as http:
        async def open_follow(token: str) -> aiohttp.ClientResponse:
            return await http.get(follow, headers={"Authorization": f"Bearer {token}"},
                                  ssl=_tls())

        opened = [await open_follow(alice), await open_follow(alice)]
        try:
            assert [r.status for r in opened] == [200, 200]
            third = await open_follow(alice)
            assert third.status == 429, third.status
            refusal = await third.json()
            assert refusal["reason"] == "TooManyRequests"
            assert f"user 'system:serviceaccount:{namespace}:alice' already has 2" \
                in refusal["message"], refusal
            # Bob has a user budget of his own, up to the node's cap.
            opened.append(await open_follow(bob))
            assert opened[-1].status == 200
            fourth = await open_follow(bob)
            assert fourth.status == 429
            assert "the node already serves 3 sessions" in (await fourth.json())["message"]
            for response in opened:
                assert await asyncio.wait_for(response.content.readline(), 20) == b"hello\n"
        finally:
            for response in opened:
                response.close()
        # Closed sessions are given back: alice is served again.
        async def served() -> bool:
            response = await open_follow(alice)
            response.close()
            return response.status == 200

        await eventually(served, 20, "alice served again after closing her follows", node)
    assert "already has 2 open sessions" in node.logs()


async def test_a_rotated_serving_certificate_is_served_by_the_running_node(
        node_factory: NodeFactory, tmp_path: Path) -> None:
    """cert-manager style rotation of ``--tls-cert-file``/``--tls-key-file`` (rewritten in
    place): the node's kubelet port presents the new certificate without a restart."""
    from vk_eci.kubelet.tls import self_signed

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"

    def write(name: str) -> bytes:
        pem, key_pem = self_signed(name, ["127.0.0.1"])
        cert.write_bytes(pem)
        key.write_bytes(key_pem)
        return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256())

    first = write("before-rotation")
    node = await node_factory(tls_cert_file=str(cert), tls_key_file=str(key))
    url = kubelet_url(node)
    host, port = node.host, int(url.rsplit(":", 1)[1])

    async def served() -> bytes:
        _, writer = await asyncio.open_connection(host, port, ssl=_tls())
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256())

    await eventually(lambda: _equals(served(), first), 30, "the first certificate served", node)
    second = write("after-rotation")
    # The node checks its files every 10 s.
    await eventually(lambda: _equals(served(), second), 30, "the rotated certificate served",
                     node)
    assert node.running


async def _equals(value: Any, expected: Any) -> bool:
    try:
        return bool(await value == expected)
    except OSError:
        return False  # not listening yet


async def test_a_client_that_goes_away_never_fails_the_others_sharing_its_review(
        node_factory: NodeFactory, control_plane: Any, kube_api: client.ApiClient,
        namespace: str, rbac_cleanup: None) -> None:
    """Two requests with one fresh token share one TokenReview (and SubjectAccessReview);
    the first client hangs up while the review is in flight. The second must still get its
    answer. Each round uses a new token, so that no cached decision hides the race, and waits
    a little longer before hanging up, so that some rounds hit the review in flight."""
    node = await node_factory()
    await running_pod(kube_api, node, namespace)
    await token_with(control_plane, namespace, "shared", ["proxy"])
    host, port = node.host, int(kubelet_url(node).rsplit(":", 1)[1])
    path = f"/containerLogs/{namespace}/web/main"
    for round_ in range(12):
        token = await kubectl(control_plane, "create", "token", "shared", "-n", namespace)
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                   "Connection: close\r\n\r\n").encode()
        # Both connections are open (TLS done) before either request is sent.
        _, leaver = await asyncio.open_connection(host, port, ssl=_tls())
        reader, stayer = await asyncio.open_connection(host, port, ssl=_tls())
        leaver.write(request)
        stayer.write(request)
        await asyncio.sleep(0.001 * round_)
        leaver.transport.abort()  # the first client goes away
        answer = await asyncio.wait_for(reader.read(), 30)
        stayer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b"hello\n", (round_, answer)
