"""The chart's RBAC is enough in practice: a real node runs with only its ServiceAccount's token.

``helm install`` the chart into a fresh namespace against the local control plane, take the
Deployment's own args from the installed release, and run ``vk-eci run`` with them as a
subprocess whose kubeconfig holds a token of the ServiceAccount the chart made (``kubectl create
token``), against the ECI emulator. The node must register Ready, renew its Lease, reconcile
an ImageCache as leader of the Lease the chart granted, run a pod from that cache to Running
(automatic match; the cache advisor, in suggest mode, saves that demand in its ConfigMap)
(projected service-account token, config map, cache annotation, events, status), serve
``kubectl logs`` and ``exec`` through the API server (SubjectAccessReview, the client CA),
delete both again, and never be refused anything: no "forbidden" in its log.

What differs from a pod: the node listens on loopback (``--metrics-addr``, ``--kubelet-*``
appended, so they win over the chart's), and its client CA is the control plane's CA file, the
very CA that a pod finds as the service account's ``ca.crt`` (kube-controller-manager
``--root-ca-file``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually, free_port, node_env
from vk_eci import config
from vk_eci.controlplane import build, cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/vk-eci"


async def run(cmd: list[str], *, check: bool = True, stdin: str | None = None) -> Any:
    """A helm/kubectl command in a thread: the emulator shares this event loop."""
    result = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True,
                                     timeout=120, check=False, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:3])} failed:\n{result.stderr}")
    return result


@pytest_asyncio.fixture
async def release(control_plane: cluster.ControlPlane, namespace: str,
                  emulator_realtime: Any) -> AsyncIterator[dict[str, Any]]:
    """The chart installed into ``namespace``, pointed at the emulator, with fast intervals."""
    helm = str(build.ensure_built().path("helm"))
    suffix = namespace[-8:]
    values = {
        # No clusterName: the chart's default, a name derived from kube-system's UID.
        "node": {"name": f"vk-chart-{suffix}",
                 "leaseDuration": 40, "leaseRenewInterval": 2, "statusInterval": 10,
                 "healthTimeout": 2},
        "eci": {"region": "cn-hangzhou", "zone": "cn-hangzhou-h", "vswitches": ["vsw-test"],
                "securityGroup": "sg-test", "endpoint": emulator_realtime.endpoint,
                "protocol": "http"},
        "pods": {"statusSyncInterval": 1, "workers": 8},
        # Not the default Lease: proves the flags follow the values the Role is made from.
        "imageCache": {"resyncInterval": 2, "leaderElection": {
            "namespace": namespace, "leaseName": f"ic-leader-{suffix}"},
            # The cache advisor in suggest mode: its ConfigMap grants are used too.
            "advisor": {"mode": "suggest", "interval": 2, "saveInterval": 1}},
    }
    path = Path(str(control_plane.dir)) / f"values-{suffix}.yaml"
    path.write_text(yaml.safe_dump(values))
    kube = ["--kubeconfig", str(control_plane.kubeconfig), "--namespace", namespace]
    name = f"r-{suffix}"
    await run([helm, "install", name, str(CHART), "-f", str(path), *kube])
    try:
        manifest = (await run([helm, "get", "manifest", name, *kube])).stdout
        # This node runs on 127.0.0.1, which a Service cannot route to: the API server cannot
        # call its webhook. The chart's ImageCache entries fail closed (templates/webhook.yaml);
        # here they fail open, so the test's ImageCache reaches the controller it audits (the
        # webhook itself is tested through the API server in test_imagecache_webhook.py).
        for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
            got = json.loads((await run([str(control_plane.bin_dir / "kubectl"), "--kubeconfig",
                                         str(control_plane.kubeconfig), "get", kind, "-o",
                                         "json"])).stdout)
            for item in got["items"]:
                hooks = [h for h in item["webhooks"] if h["name"].endswith(
                    f".{name}-vk-eci-webhook.vk-eci.io") and "imagecaches" in h["name"]]
                if not hooks:
                    continue
                for hook in hooks:
                    hook["failurePolicy"] = "Ignore"
                await run([str(control_plane.bin_dir / "kubectl"), "--kubeconfig",
                           str(control_plane.kubeconfig), "replace", "-f", "-"],
                          stdin=json.dumps(item))
        yield {"name": name, "values": values, "docs": [
            d for d in yaml.safe_load_all(manifest) if d]}
    finally:
        await run([helm, "uninstall", name, *kube], check=False)
        path.unlink(missing_ok=True)


async def sa_kubeconfig(cp: cluster.ControlPlane, namespace: str, sa: str,
                        directory: Path) -> Path:
    """A kubeconfig that authenticates as ``sa`` only (a bound token, as a pod would have)."""
    token = (await run([str(cp.bin_dir / "kubectl"), "--kubeconfig", str(cp.kubeconfig),
                        "create", "token", sa, "-n", namespace, "--duration=1h"])).stdout.strip()
    assert token.count(".") == 2, "kubectl create token gave no JWT"
    path = directory / "sa.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "local", "cluster": {
            "server": cp.server, "certificate-authority": str(cp.dir / "pki" / "ca.crt")}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": sa}}]}))
    path.chmod(0o600)
    return path


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    return dep


async def test_node_runs_with_only_the_chart_service_account(
        release: dict[str, Any], control_plane: cluster.ControlPlane, namespace: str,
        kube_api: client.ApiClient, emulator_realtime: Any, tmp_path: Path) -> None:
    dep = deployment(release["docs"])
    pod_spec = dep["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    sa = pod_spec["serviceAccountName"]
    node_name = release["values"]["node"]["name"]
    kubeconfig = await sa_kubeconfig(control_plane, namespace, sa, tmp_path)
    metrics_port = free_port()
    kubelet_port = free_port()
    argv = [sys.executable, "-m", "vk_eci", "run", *container["args"],
            "--kubeconfig", str(kubeconfig), "--metrics-addr", f"127.0.0.1:{metrics_port}",
            "--kubelet-address", "127.0.0.1", "--kubelet-port", str(kubelet_port),
            "--client-ca-file", str(control_plane.dir / "pki" / "ca.crt")]
    if not config.is_loopback(emulator_realtime.endpoint.rsplit(":", 1)[0]):
        argv.append("--insecure-eci-endpoint")  # the emulator on the test world's private /30
    # The webhook serves the certificate the chart made (its Secret, mounted in a pod).
    [tls] = [d for d in release["docs"] if d["kind"] == "Secret"
             and d["metadata"]["name"].endswith("-webhook-tls")]
    for key in ("tls.crt", "tls.key"):
        (tmp_path / key).write_bytes(base64.b64decode(tls["data"][key]))
    argv += ["--webhook-port", str(free_port()), "--webhook-tls-cert-file",
             str(tmp_path / "tls.crt"), "--webhook-tls-key-file", str(tmp_path / "tls.key")]
    env = node_env()
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    # What the downward API gives the pod (the replica's identity among the node's replicas).
    assert any(e["name"] == "POD_NAME" for e in container["env"])
    env["POD_NAME"] = f"{node_name}-pod"
    node = NodeProcess(name=node_name, argv=argv, env=env,
                       log_path=tmp_path / f"{node_name}.log", metrics_port=metrics_port)
    core = client.CoreV1Api(kube_api)
    coordination = client.CoordinationV1Api(kube_api)
    custom = client.CustomObjectsApi(kube_api)
    kubectl = [str(control_plane.bin_dir / "kubectl"), "--kubeconfig",
               str(control_plane.kubeconfig)]
    cache = f"chart-{namespace[-8:]}"
    await node.start()
    try:
        # The probe the chart gives the pod answers on the metrics port.
        probe = container["livenessProbe"]["httpGet"]

        async def healthz() -> bool:
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{metrics_port}{probe['path']}") as resp:
                return resp.status == 200
        await eventually(_quiet(healthz), 30, f"GET {probe['path']} 200", node)

        # Registered and Ready (Ready implies a live Lease and a healthy ECI, see node.py).
        async def ready() -> bool:
            got = await core.read_node(node_name)
            return any(c.type == "Ready" and c.status == "True"
                       for c in got.status.conditions or [])
        await eventually(ready, 60, "node Ready", node)

        # The heartbeat Lease is renewed (every 2 s here).
        # (Ready may be written at registration, a moment before the first Lease.)
        first = (await eventually(lambda: coordination.read_namespaced_lease(
            node_name, "kube-node-lease"), 20, "node Lease created", node)).spec

        async def renewed() -> bool:
            spec = (await coordination.read_namespaced_lease(node_name, "kube-node-lease")).spec
            return bool(spec.renew_time > first.renew_time and
                        spec.holder_identity == node_name)
        await eventually(renewed, 20, "node Lease renewed", node)

        # The ImageCache controller leads the Lease the chart granted and builds a cache.
        await run([*kubectl, "apply", "-f", "-"], stdin=json.dumps({
            "apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
            "metadata": {"name": cache}, "spec": {"images": ["busybox:1.36"]}}))

        async def cache_ready() -> Any:
            obj = await custom.get_cluster_custom_object(
                "eci.alibabacloud.com", "v1", "imagecaches", cache)
            status = obj.get("status") or {}
            return obj if status.get("phase") == "Ready" else None
        obj = await eventually(cache_ready, 60, "ImageCache Ready", node)
        cache_id = obj["status"]["imageCacheId"]
        assert cache_id.startswith("imc-")
        assert obj["metadata"]["finalizers"], "controller put no finalizer on the ImageCache"
        election = release["values"]["imageCache"]["leaderElection"]
        leader = await coordination.read_namespaced_lease(election["leaseName"],
                                                          election["namespace"])
        assert leader.spec.holder_identity == env["POD_NAME"]

        # A pod started from that cache, with the namespace's default service account
        # (projected token volume, the kube-root-ca.crt config map) and a config map env var.
        await core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings"), data={"MODE": "chart"}))
        await core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds"), string_data={"TOKEN": "t0k3n"}))
        # Automatic match: the only Ready cache holding busybox is chosen, and the pod is
        # demand for the advisor (which then saves its ConfigMap).
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="job", annotations={
                "k8s.aliyun.com/eci-image-cache": "true"}),
            spec=client.V1PodSpec(node_name=node_name, containers=[client.V1Container(
                name="main", image="busybox:1.36",
                command=["sh", "-c", "echo started; sleep infinity"],
                env=[client.V1EnvVar(name="MODE", value_from=client.V1EnvVarSource(
                    config_map_key_ref=client.V1ConfigMapKeySelector(
                        name="settings", key="MODE"))),
                     client.V1EnvVar(name="TOKEN", value_from=client.V1EnvVarSource(
                         secret_key_ref=client.V1SecretKeySelector(
                             name="creds", key="TOKEN")))])]))

        async def created() -> bool:
            await core.create_namespaced_pod(namespace, pod)
            return True
        # The namespace's default ServiceAccount may not exist yet (admission refuses).
        await eventually(created, 30, "pod created")

        async def running() -> Any:
            got = await core.read_namespaced_pod("job", namespace)
            return got if got.status.phase == "Running" else None
        got = await eventually(running, 60, "pod Running", node)
        [create] = emulator_realtime.recorded("CreateContainerGroup")
        assert create["ImageSnapshotId"] == cache_id
        # The node recorded its cache choice on the pod (a pod patch).
        assert got.metadata.annotations.get("vk-eci.io/image-cache") == cache_id

        # The node writes the pod's events (its own and ECI's, copied onto the pod).
        async def node_events() -> list[Any]:
            events = await core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=job")
            return [e for e in events.items if e.reporting_instance == node_name]
        assert await eventually(node_events, 30, "events written by the node", node)

        # The advisor keeps that demand in the ConfigMap the chart's Role grants.
        advisor_cm = f"{release['name']}-vk-eci-advisor"

        async def demand_saved() -> bool:
            cm = await core.read_namespaced_config_map(advisor_cm, namespace)
            return '"sets":[[' in (cm.data or {}).get("demand.json", "")
        await eventually(demand_saved, 30, "the advisor's ConfigMap saved", node)

        # kubectl logs/exec: the API server calls the node with its kubelet client cert; the
        # node authorises that with a SubjectAccessReview made with the chart's token.
        async def logs() -> Any:
            out = await run([*kubectl, "logs", "-n", namespace, "job"], check=False)
            return out if out.returncode == 0 and out.stdout else None
        out = await eventually(logs, 30, "kubectl logs answers", node)
        assert out.stdout == "started\n"
        out = await run([*kubectl, "exec", "-n", namespace, "job", "--", "echo", "hi"])
        assert out.stdout == "hi\n"

        # A caller with a bearer token (metrics-server, say): the node asks a TokenReview.
        token = (await run([*kubectl, "create", "token", "default", "-n", namespace])).stdout
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        async with aiohttp.ClientSession() as http, http.get(
                f"https://127.0.0.1:{kubelet_port}/healthz", ssl=insecure,
                headers={"Authorization": f"Bearer {token.strip()}"}) as resp:
            assert resp.status == 403  # authenticated, not authorised

        # A restart finds its Node registered already: read back and patched, not re-created.
        await node.restart()
        await eventually(ready, 60, "node Ready after a restart", node)

        # Deletes go through: the cache (finalizer removed) and the pod (group deleted, then
        # the pod object removed by the node).
        await custom.delete_cluster_custom_object("eci.alibabacloud.com", "v1", "imagecaches",
                                                  cache)
        await eventually(_gone(lambda: custom.get_cluster_custom_object(
            "eci.alibabacloud.com", "v1", "imagecaches", cache)), 60, "ImageCache deleted", node)
        # A graceful delete: the node deletes the group, then the pod object itself.
        await core.delete_namespaced_pod("job", namespace)
        await eventually(_gone(lambda: core.read_namespaced_pod("job", namespace)), 60,
                         "pod deleted", node)
    finally:
        code = await node.stop()
        await run([*kubectl, "patch", "imagecache", cache, "--type=merge",
                   "-p", '{"metadata":{"finalizers":null}}'], check=False)
        await run([*kubectl, "delete", "imagecache", cache, "--wait=false"], check=False)
        await run([*kubectl, "delete", "node", node_name, "--wait=false"], check=False)
    logs_text = node.logs()
    refused = [line for line in logs_text.splitlines()
               if "forbidden" in line.lower() or "(403)" in line]
    assert refused == [], "the chart's RBAC refused the node:\n" + "\n".join(refused)
    assert code == 0, f"node exited {code}:\n{logs_text[-3000:]}"
    kube_system = await core.read_namespace("kube-system")
    assert f"cluster name 'k8s-{kube_system.metadata.uid}' (derived" in logs_text

    # Every grant of the chart was used by this run (the API server's audit log says what the
    # service account asked for): a grant nothing calls is a grant too many.
    calls = audited_calls(control_plane.audit_log, f"system:serviceaccount:{namespace}:{sa}")
    unused = [g for g in chart_grants(release["docs"])
              if not any(g.allows(c) for c in calls) and g.key() not in RARE_PATHS]
    assert unused == [], "the chart grants what the node never called:\n" + "\n".join(
        str(g) for g in unused) + "\ncalls:\n" + "\n".join(sorted(map(str, calls)))


# Grants whose calls this run cannot provoke, each with the code path that needs it.
RARE_PATHS = {
    ("", "", "events", "get"): "events.py: a repeated event (409) is read back, then patched",
    ("", "", "events", "patch"): "events.py: a repeated event's count is patched",
    ("kube-node-lease", "coordination.k8s.io", "leases", "get"):
        "standby.py: a standby replica reads the leader's node heartbeat (one replica here)",
    ("", "", "persistentvolumeclaims", "get"):
        "cluster/pods/resources.py: a pod with a PVC (test_kubelet_semantics runs one; not here)",
    ("", "", "persistentvolumes", "get"):
        "cluster/pods/resources.py: the PV bound to a pod's claim (test_kubelet_semantics)",
}


@dataclass(frozen=True)
class Call:
    namespace: str
    group: str
    resource: str  # with /subresource
    verb: str
    name: str


@dataclass(frozen=True)
class Grant:
    namespace: str | None  # None: a ClusterRole's, any namespace
    group: str
    resource: str
    verb: str
    names: tuple[str, ...]

    def allows(self, call: Call) -> bool:
        return ((self.namespace is None or self.namespace == call.namespace)
                and (self.group, self.resource, self.verb) == (
                    call.group, call.resource, call.verb)
                and (not self.names or call.name in self.names))

    def key(self) -> tuple[str, str, str, str]:
        return self.namespace or "", self.group, self.resource, self.verb


def audited_calls(audit_log: Path, user: str) -> set[Call]:
    """Every allowed request ``user`` made, from the API server's audit log."""
    out: set[Call] = set()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") != user:
            continue
        ref = event.get("objectRef") or {}
        if not ref.get("resource") or event.get("responseStatus", {}).get("code") == 403:
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.add(Call(ref.get("namespace", ""), ref.get("apiGroup", ""), resource,
                     event["verb"], ref.get("name", "")))
    return out


def chart_grants(docs: list[dict[str, Any]]) -> list[Grant]:
    """Every (namespace, group, resource, verb, names) the chart's ClusterRole and Roles grant."""
    out: list[Grant] = []
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        namespace = doc["metadata"].get("namespace") if doc["kind"] == "Role" else None
        for rule in doc["rules"]:
            out.extend(Grant(namespace, group, resource, verb,
                             tuple(rule.get("resourceNames", ())))
                       for group in rule["apiGroups"] for resource in rule["resources"]
                       for verb in rule["verbs"])
    return out


def _quiet(check: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """``check`` with connection errors counted as not yet (the server may not listen yet)."""
    async def wrapped() -> Any:
        try:
            return await check()
        except aiohttp.ClientError:
            return False
    return wrapped


def _gone(read: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[bool]]:
    """A check that the object ``read()`` reads is gone (404)."""
    from kubernetes_asyncio.client.exceptions import ApiException

    async def check() -> bool:
        try:
            await read()
        except ApiException as e:
            return e.status == 404
        return False
    return check
