"""The kubelet HTTPS API against the real control plane (TokenReview, SubjectAccessReview, the
API server's node proxy, kubectl) and the ECI emulator through the official SDK."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yarl
from alibabacloud_eci20180808 import models as m
from kubernetes_asyncio import client

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.pod_io import EciPodIO
from vk_eci.controlplane.state import ControlPlane
from vk_eci.emulator import Emulator
from vk_eci.kubelet.server import KubeletConfig, KubeletServer

from .terminal import interactive_shell

pytestmark = pytest.mark.integration
CLUSTER = "kubelet-test"


@dataclass
class Kubelet:
    server: KubeletServer
    eci: EciClient
    pod_io: EciPodIO
    node: str
    cp: ControlPlane

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    async def kubectl(self, *args: str, check: bool = True) -> Any:
        # kubectl blocks: off the loop, which serves the kubelet API it calls.
        return await asyncio.to_thread(self.cp.kubectl, *args, check=check)

    async def run_pod(self, ns: str, pod: str, script: str, *,
                      restart: str = "Never", uid: str | None = None) -> str:
        """An ECI group for pod ``ns/pod`` of this node running ``sh -c script``; waits until
        its container started."""
        req = m.CreateContainerGroupRequest(
            region_id="cn-hangzhou", container_group_name=naming.group_name(ns, pod),
            security_group_id="sg-1", v_switch_id="vsw-1", restart_policy=restart,
            tag=[m.CreateContainerGroupRequestTag(key=k, value=v) for k, v in
                 naming.pod_tags(CLUSTER, self.node, ns, pod, uid or str(uuid.uuid4())).items()],
            container=[m.CreateContainerGroupRequestContainer(
                name="main", image="busybox:1.36", cpu=1.0, memory=2.0,
                command=["sh", "-c", script])])
        gid = await self.eci.create_container_group(req)
        for _ in range(300):
            if await self.pod_io.container_state(ns, pod, "main") not in (None, "Waiting"):
                return gid
            await asyncio.sleep(0.1)
        raise AssertionError(f"the container of {ns}/{pod} did not start within 30 s")


@pytest_asyncio.fixture
async def kubelet(control_plane: ControlPlane, kube_api: client.ApiClient,
                  emulator_realtime: Emulator) -> AsyncIterator[Kubelet]:
    node = f"vk-{uuid.uuid4().hex[:8]}"
    eci = EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                    endpoint=emulator_realtime.endpoint, protocol="http",
                                    default_rate_limit=None))
    pod_io = EciPodIO(eci, cluster_name=CLUSTER, node_name=node)
    config = KubeletConfig(node_name=node, host="127.0.0.1", port=0,
                           client_ca_file=control_plane.dir / "pki" / "ca.crt",
                           follow_interval=0.2, stats_ttl=0.0)
    server = KubeletServer(config, kube_api, pod_io)
    await server.start()
    try:
        yield Kubelet(server, eci, pod_io, node, control_plane)
    finally:
        await server.stop()


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def get(url: str, token: str | None = None, cert: tuple[Path, Path] | None = None,
              raw: bool = False) -> tuple[int, str]:
    ctx = _insecure()
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, \
            http.get(yarl.URL(url, encoded=True) if raw else url, headers=headers,
                     ssl=ctx) as resp:
        return resp.status, await resp.text()


async def token_for(k: Kubelet, ns: str, sa: str, subresources: list[str]) -> str:
    """A token of service account ``ns/sa`` allowed get+create on ``nodes/<subresources>``."""
    await k.kubectl("create", "serviceaccount", sa, "-n", ns)
    if subresources:
        role = f"{ns}-{sa}"
        rules = [{"apiGroups": [""], "resources": [f"nodes/{s}" for s in subresources],
                  "verbs": ["get", "create"]}]
        manifest = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": role, "labels": {"test": ns}}, "rules": rules}
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": role, "labels": {"test": ns}},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": role},
                   "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [manifest, binding]})
        await asyncio.to_thread(k.cp.kubectl, "apply", "-f", "-", input=text)
    result = await k.kubectl("create", "token", sa, "-n", ns)
    return str(result.stdout).strip()


@pytest_asyncio.fixture
async def rbac_cleanup(control_plane: ControlPlane, namespace: str) -> AsyncIterator[None]:
    yield
    await asyncio.to_thread(control_plane.kubectl, "delete", "clusterrole,clusterrolebinding",
                            "-l", f"test={namespace}", check=False)


async def test_anonymous_is_401_unprivileged_is_403_and_rights_are_per_subresource(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    await kubelet.run_pod(namespace, "web", "echo hello; sleep infinity")
    logs = f"{kubelet.url}/containerLogs/{namespace}/web/main"
    summary = f"{kubelet.url}/stats/summary"
    for url in (logs, summary, f"{kubelet.url}/healthz", f"{kubelet.url}/metrics/resource"):
        status, _ = await get(url)
        assert status == 401, url
    status, _ = await get(logs, token="not-a-token")
    assert status == 401

    nobody = await token_for(kubelet, namespace, "nobody", [])
    status, body = await get(logs, token=nobody)
    assert status == 403 and f"system:serviceaccount:{namespace}:nobody" in body

    # The attack: nodes/log is the kubelet's /logs/ (node log files) only. It must not read
    # a container's log, whatever the path is dressed as.
    log_only = await token_for(kubelet, namespace, "logonly", ["log"])
    status, body = await get(logs, token=log_only)
    assert status == 403 and "nodes/proxy" in body, body
    for trick in (f"/logs/../containerLogs/{namespace}/web/main",
                  f"/logs/%2e%2e/containerLogs/{namespace}/web/main",
                  f"/logs//containerLogs/{namespace}/web/main"):
        status, body = await get(kubelet.url + trick, token=log_only, raw=True)
        assert status in (400, 403, 404) and "hello" not in body, (trick, status, body)
    status, _ = await get(summary, token=log_only)
    assert status == 403  # nodes/log does not give nodes/stats either

    reader = await token_for(kubelet, namespace, "reader", ["stats"])
    assert (await get(summary, token=reader))[0] == 200
    status, _ = await get(logs, token=reader)
    assert status == 403  # nor does nodes/stats give container logs

    proxy = await token_for(kubelet, namespace, "proxy", ["proxy"])
    # nodes/proxy: container logs, exec, healthz…, but stats stay nodes/stats (as the kubelet).
    assert (await get(logs, token=proxy))[0] == 200
    assert (await get(summary, token=proxy))[0] == 403
    assert await get(f"{kubelet.url}/healthz", token=proxy) == (200, "ok")

    # Repeated calls are answered from the cache: one TokenReview per token.
    reviews = kubelet.server.authenticator.reviews
    for _ in range(3):
        assert (await get(summary, token=reader))[0] == 200
    assert kubelet.server.authenticator.reviews == reviews


async def test_client_certificate_of_the_cluster_ca_is_accepted(
        kubelet: Kubelet, namespace: str) -> None:
    await kubelet.run_pod(namespace, "web", "echo via cert; sleep infinity")
    pki = kubelet.cp.dir / "pki"
    admin = (pki / "kubeconfig-client.crt", pki / "kubeconfig-client.key")
    assert await get(f"{kubelet.url}/containerLogs/{namespace}/web/main", cert=admin) == \
        (200, "via cert\n")
    # A certificate that the client CA did not sign is refused in the handshake.
    other = kubelet.cp.dir / "other"
    other.mkdir(exist_ok=True)
    from vk_eci.controlplane import pki as pki_mod

    rogue_ca = pki_mod.make_ca(other)
    rogue = pki_mod.issue(rogue_ca, other, "rogue", cn="admin", org="system:masters")
    with pytest.raises(aiohttp.ClientError):
        await get(f"{kubelet.url}/containerLogs/{namespace}/web/main",
                  cert=(rogue.cert, rogue.key))


async def admin_token(k: Kubelet, ns: str) -> str:
    return await token_for(k, ns, "admin", ["proxy", "log", "stats", "metrics"])


async def test_logs_tail_limit_timestamps_since_and_errors(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    await kubelet.run_pod(namespace, "job", "echo one; echo two; echo three; sleep infinity")
    base = f"{kubelet.url}/containerLogs/{namespace}/job/main"
    assert await get(base, token) == (200, "one\ntwo\nthree\n")
    assert await get(base + "?tailLines=2", token) == (200, "two\nthree\n")
    assert await get(base + "?limitBytes=6", token) == (200, "one\ntw")
    status, body = await get(base + "?timestamps=true&tailLines=1", token)
    assert status == 200
    stamp, _, text = body.partition(" ")
    assert text == "three\n" and stamp.endswith("Z") and "T" in stamp
    assert await get(base + "?sinceTime=2999-01-01T00:00:00Z", token) == (200, "")
    assert (await get(base + "?sinceSeconds=3600", token))[1] == "one\ntwo\nthree\n"
    assert await get(base + "?previous=true", token) == (200, "")

    status, body = await get(base + "?tailLines=-1", token)
    assert status == 400 and "tailLines" in body
    status, body = await get(base + "?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z", token)
    assert status == 400 and "sinceTime" in body
    status, body = await get(f"{kubelet.url}/containerLogs/{namespace}/nosuch/main", token)
    assert status == 404 and "nosuch" in body
    status, body = await get(base.rsplit("/", 1)[0] + "/sidecar", token)
    assert status == 404 and "sidecar" in body


async def test_logs_follow_streams_new_lines_once_and_ends_with_the_container(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    # time_scale 0.01: "sleep 60" is 0.6 s, so lines land in several polls.
    await kubelet.run_pod(namespace, "job",
                          "echo a; sleep 60; echo b; echo c; sleep 60; echo d; exit 0")
    status, body = await asyncio.wait_for(
        get(f"{kubelet.url}/containerLogs/{namespace}/job/main?follow=true", token), 20)
    assert (status, body) == (200, "a\nb\nc\nd\n")


async def test_logs_follow_stops_at_limit_bytes(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    await kubelet.run_pod(namespace, "srv", "echo first; sleep 60; echo second; sleep infinity")
    status, body = await asyncio.wait_for(get(
        f"{kubelet.url}/containerLogs/{namespace}/srv/main?follow=true&limitBytes=9", token), 20)
    assert (status, body) == (200, "first\nsec")


async def ws_exec(url: str, token: str, protocol: str = "v5.channel.k8s.io",
                  ) -> tuple[str | None, dict[int, bytes]]:
    frames: dict[int, bytes] = {}
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url, protocols=(protocol,), headers={"Authorization": f"Bearer {token}"},
            ssl=_insecure()) as ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                frames[msg.data[0]] = frames.get(msg.data[0], b"") + msg.data[1:]
            elif msg.type == aiohttp.WSMsgType.TEXT:
                import base64

                ch = int(msg.data[0])
                frames[ch] = frames.get(ch, b"") + base64.b64decode(msg.data[1:])
        return ws.protocol, frames


async def test_exec_over_websocket_channels(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    await kubelet.run_pod(namespace, "srv", "sleep infinity")
    base = (f"{kubelet.url}/exec/{namespace}/srv/main?command=sh&command=-c"
            "&command=echo%20hi%3B%20echo%20there&output=1&error=1")
    for protocol in ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"):
        chosen, frames = await ws_exec(base, token, protocol)
        assert chosen == protocol
        assert frames[1] == b"hi\nthere\n"
        assert json.loads(frames[3]) == {"metadata": {}, "status": "Success"}

    # The exit code comes back as client-go reads it; stderr on its own channel.
    _, frames = await ws_exec(base.replace("echo%20hi%3B%20echo%20there",
                                           "echo%20out%3B%20nosuch%3B%20exit%205"), token)
    assert frames[1] == b"out\n" and frames[2] == b"sh: nosuch: not found\n"
    status = json.loads(frames[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]

    _, frames = await ws_exec(f"{kubelet.url}/exec/{namespace}/gone/main?command=ls&output=1",
                              token)
    status = json.loads(frames[3])
    assert status["status"] == "Failure" and status["code"] == 404

    # exec needs nodes/proxy: nodes/log is not enough.
    reader = await token_for(kubelet, namespace, "reader", ["log"])
    status_code, _ = await get(base, reader)
    assert status_code == 403


async def test_stats_summary_and_resource_metrics(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    await kubelet.run_pod(namespace, "a", "sleep infinity")
    await kubelet.run_pod(namespace, "b", "sleep infinity")
    status, body = await get(f"{kubelet.url}/stats/summary", token)
    assert status == 200
    summary = json.loads(body)
    assert summary["node"]["nodeName"] == kubelet.node
    pods = {p["podRef"]["name"]: p for p in summary["pods"]}
    assert set(pods) == {"a", "b"}
    for p in pods.values():
        assert p["podRef"]["namespace"] == namespace and p["podRef"]["uid"]
        # Emulator: 10 % of 1 vCPU and 30 % of 2 GiB while running.
        assert p["cpu"]["usageNanoCores"] == 100_000_000
        assert p["memory"]["workingSetBytes"] == int(2 * 1024 ** 3 * 0.3)
        assert [c["name"] for c in p["containers"]] == ["main"]
    assert summary["node"]["cpu"]["usageNanoCores"] == 200_000_000

    status, text = await get(f"{kubelet.url}/metrics/resource", token)
    assert status == 200
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    ws = int(2 * 1024 ** 3 * 0.3)
    assert (f'container_memory_working_set_bytes{{container="main",namespace="{namespace}",'
            f'pod="a"}} {ws} ') in text
    assert f'pod_memory_working_set_bytes{{namespace="{namespace}",pod="b"}} {ws} ' in text
    assert f"node_memory_working_set_bytes {2 * ws} " in text
    assert "resource_scrape_error 0" in text


# ---- through the API server: kubectl logs and kubectl exec --------------------------------


async def register_node(k: Kubelet, *, websockets: bool = True) -> None:
    """A Node object pointing at this kubelet API (what the node controller writes);
    ``websockets`` False for API servers before 1.36, which know no declared features."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": k.node}}
    await asyncio.to_thread(k.cp.kubectl, "apply", "-f", "-", input=json.dumps(node))
    status = {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": k.server.port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Test",
                        "message": "test"}],
        # Lets the API server proxy exec WebSockets through instead of translating to SPDY.
        **({"declaredFeatures": ["ExtendWebSocketsToKubelet"]} if websockets else {})}}
    await k.kubectl("patch", "node", k.node, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))


async def create_pod(k: Kubelet, ns: str, pod: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns},
                "spec": {"nodeName": k.node, "containers": [{"name": "main",
                                                             "image": "busybox:1.36"}]}}
    await asyncio.to_thread(k.cp.kubectl, "apply", "-f", "-", input=json.dumps(manifest))


async def copy_round_trip(cp: ControlPlane, ns: str, pod: str, tmp: Path) -> None:
    """kubectl cp of a directory into the pod and back: same files, same bytes."""
    src = tmp / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    await asyncio.to_thread(cp.kubectl, "cp", str(src), f"{ns}/{pod}:/tmp/data")
    out = await asyncio.to_thread(cp.kubectl, "exec", "-n", ns, pod, "--", "cat",
                                  "/tmp/data/a.txt")
    assert out.stdout == "alpha\n"
    back = tmp / "back"
    await asyncio.to_thread(cp.kubectl, "cp", f"{ns}/{pod}:/tmp/data", str(back))
    assert (back / "a.txt").read_text() == "alpha\n"
    assert (back / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 40


async def test_kubectl_logs_and_exec_through_the_api_server(
        kubelet: Kubelet, namespace: str, tmp_path: Path) -> None:
    await register_node(kubelet)
    try:
        await kubelet.run_pod(namespace, "web", "echo line1; echo line2; sleep infinity")
        await create_pod(kubelet, namespace, "web")

        out = await kubelet.kubectl("logs", "-n", namespace, "web")
        assert out.stdout == "line1\nline2\n"
        out = await kubelet.kubectl("logs", "-n", namespace, "web", "--tail=1")
        assert out.stdout == "line2\n"

        # kubectl logs -f: streamed through the API server until the container ends.
        await kubelet.run_pod(namespace, "job", "echo x; sleep 60; echo y; exit 0")
        await create_pod(kubelet, namespace, "job")
        out = await kubelet.kubectl("logs", "-f", "-n", namespace, "job")
        assert out.stdout == "x\ny\n"

        out = await kubelet.kubectl("exec", "-n", namespace, "web", "--", "sh", "-c",
                                    "echo from-exec")
        assert out.stdout == "from-exec\n"
        # stdin: piped through to the command, its end reaches it (v5 close signal).
        out = await asyncio.to_thread(kubelet.cp.kubectl, "exec", "-i", "-n", namespace, "web",
                                      "--", "cat", input="piped\nlines\n")
        assert out.stdout == "piped\nlines\n"
        out = await kubelet.kubectl("exec", "-n", namespace, "web", "--", "sh", "-c",
                                    "echo bye; exit 3", check=False)
        assert (out.returncode, out.stdout) == (3, "bye\n")

        # kubectl exec -it on a real terminal, and kubectl cp both ways.
        kubectl = [str(kubelet.cp.bin_dir / "kubectl"), "--kubeconfig",
                   str(kubelet.cp.kubeconfig)]
        code, screen = await asyncio.to_thread(interactive_shell, kubectl, namespace, "web")
        assert code == 7, screen
        await copy_round_trip(kubelet.cp, namespace, "web", tmp_path)

        # The API server refuses to proxy nodes/proxy to a loopback address ("address not
        # allowed"), so `kubectl get --raw /api/v1/nodes/N/proxy/stats/summary` cannot run in a
        # loopback-only test; call as the API server does: with its kubelet client certificate.
        pki = kubelet.cp.dir / "pki"
        apiserver = (pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key")
        status, body = await get(f"{kubelet.url}/stats/summary", cert=apiserver)
        assert status == 200
        assert [p["podRef"]["name"] for p in json.loads(body)["pods"]] == ["web"]
        status, text = await get(f"{kubelet.url}/metrics/resource", cert=apiserver)
        assert f'pod_cpu_usage_seconds_total{{namespace="{namespace}",pod="web"}}' in text
    finally:
        await kubelet.kubectl("delete", "pod", "-n", namespace, "web", "job", "--force",
                              "--grace-period=0", check=False)
        await kubelet.kubectl("delete", "node", kubelet.node, check=False)


# ---- /pods, /runningpods/, and the refusals of /attach and /portForward ----------------------


async def test_running_pods_and_pods_as_the_kubelet_lists_them(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    # No pod yet: an empty list, never null, under either spelling of either path (client-go
    # cleans a trailing slash away; the virtual-kubelet library answers both forms).
    for path in ("/runningpods/", "/runningpods", "/pods", "/pods/"):
        status, body = await get(f"{kubelet.url}{path}", token)
        assert (status, json.loads(body)) == (200, {
            "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}), path
    uid = str(uuid.uuid4())
    await kubelet.run_pod(namespace, "web", "sleep infinity", uid=uid)
    await kubelet.run_pod(namespace, "done", "exit 0")  # ended: not running, not listed
    status, body = await get(f"{kubelet.url}/runningpods/", token)
    assert status == 200
    assert await get(f"{kubelet.url}/runningpods", token) == (status, body)
    # kubecontainer.Pod.ToAPIPod: identity and running containers' name and image, no more.
    assert json.loads(body) == {
        "kind": "PodList", "apiVersion": "v1", "metadata": {},
        "items": [{"metadata": {"name": "web", "namespace": namespace, "uid": uid},
                   "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                            "resources": {}}]},
                   "status": {}}]}

    await create_pod(kubelet, namespace, "web")
    status, body = await get(f"{kubelet.url}/pods", token)
    assert status == 200
    listed = json.loads(body)
    assert (listed["kind"], listed["apiVersion"]) == ("PodList", "v1")
    [pod] = listed["items"]
    assert (pod["metadata"]["namespace"], pod["metadata"]["name"]) == (namespace, "web")
    assert pod["spec"]["nodeName"] == kubelet.node
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.36"

    # Both are nodes/pods (falling back to nodes/proxy), as on the kubelet: nodes/log is not
    # enough, and nodes/pods gives nothing beyond them.
    reader = await token_for(kubelet, namespace, "reader", ["log"])
    lister = await token_for(kubelet, namespace, "lister", ["pods"])
    for path in ("/runningpods/", "/pods"):
        assert (await get(kubelet.url + path, reader))[0] == 403, path
        assert (await get(kubelet.url + path))[0] == 401, path
        assert (await get(kubelet.url + path, lister))[0] == 200, path
    assert (await get(f"{kubelet.url}/containerLogs/{namespace}/web/main", lister))[0] == 403


async def test_attach_and_port_forward_are_refused_with_the_reason(
        kubelet: Kubelet, namespace: str, rbac_cleanup: None) -> None:
    token = await admin_token(kubelet, namespace)
    for path, word in ((f"/attach/{namespace}/web/main?output=1", "attach"),
                       (f"/portForward/{namespace}/web?port=80", "port-forward")):
        status, body = await get(kubelet.url + path, token)
        refusal = json.loads(body)
        assert status == 405, path
        assert refusal["kind"] == "Status" and refusal["reason"] == "MethodNotAllowed"
        assert refusal["message"].startswith(f"{word} is not supported by the virtual node")

    # Through the API server, kubectl shows the reason.
    await register_node(kubelet)
    try:
        await kubelet.run_pod(namespace, "web", "sleep infinity")
        await create_pod(kubelet, namespace, "web")
        # kubectl port-forward checks the phase first (no node controller runs here).
        await kubelet.kubectl("patch", "pod", "web", "-n", namespace, "--subresource=status",
                              "--type=merge", "-p", '{"status": {"phase": "Running"}}')
        out = await kubelet.kubectl("attach", "-n", namespace, "web", check=False)
        assert out.returncode != 0
        assert "attach is not supported by the virtual node" in out.stderr, out.stderr
        out = await asyncio.to_thread(kubelet.cp.kubectl, "port-forward", "-n", namespace,
                                      "pod/web", "0:80", check=False, timeout=30)
        assert out.returncode != 0
        assert "port-forward is not supported by the virtual node" in out.stderr, out.stderr
    finally:
        await kubelet.kubectl("delete", "pod", "-n", namespace, "web", "--force",
                              "--grace-period=0", check=False)
        await kubelet.kubectl("delete", "node", kubelet.node, check=False)
