"""The container image the chart deploys is built from the repository's Dockerfile and run.

The Dockerfile is built unchanged by ``hack/image/build.sh`` (buildah, on a local Debian base
that stands in for ``python:3.11-slim``, since no image registry is reachable here), then run
with podman the way the chart runs it: the Deployment's own args, the chart ServiceAccount's
token, user 10001, a read-only root file system with a writable ``/tmp``. Host network: the
control plane and the ECI emulator listen on this machine's loopback.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually, free_port
from tests.integration import test_chart_node as chart_node
from vk_eci.controlplane import cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/vk-eci:test"
# runc, not crun: crun refuses this machine's hybrid cgroup layout. Limits lowered explicitly:
# the runtime's defaults would raise them, which needs CAP_SYS_RESOURCE (absent in this sandbox).
PODMAN_RUN = ["podman", "run", "--runtime", "runc", "--network", "host",
              "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]

release = chart_node.release


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built (or brought up to date: buildah caches layers) for this session."""
    result = _run(["bash", str(ROOT / "hack/image/build.sh"), TAG], timeout=1800)
    assert result.returncode == 0, f"image build failed:\n{result.stderr[-4000:]}"
    return TAG


def test_image_runs_the_command_line(image: str) -> None:
    out = _run([*PODMAN_RUN, "--rm", "--entrypoint", "vk-eci", image, "--help"])
    assert out.returncode == 0, out.stderr
    assert "{cluster,emulator,run,demo" in out.stdout.replace(" ", "")
    # The default entrypoint is `vk-eci run` under tini; the user is the chart's numeric one.
    out = _run([*PODMAN_RUN, "--rm", image, "--help"])
    assert out.returncode == 0, out.stderr
    assert "--kubelet-port" in out.stdout
    out = _run(["podman", "image", "inspect", image, "--format", "{{.Config.User}}"])
    assert out.stdout.strip() == "10001:10001"


@pytest_asyncio.fixture
async def container_name() -> AsyncIterator[str]:
    name = f"vk-eci-test-{uuid.uuid4().hex[:8]}"
    yield name
    await asyncio.to_thread(_run, ["podman", "rm", "-f", "-t", "0", name])


async def test_image_runs_the_node_as_the_chart_does(
        image: str, release: dict[str, Any], control_plane: cluster.ControlPlane,
        namespace: str, kube_api: client.ApiClient, emulator_realtime: Any,
        tmp_path: Path, container_name: str) -> None:
    dep = chart_node.deployment(release["docs"])
    pod_spec = dep["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    # The chart runs the container with these; the test runs it with the same.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec["securityContext"]["runAsUser"] == 10001
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    node_name = release["values"]["node"]["name"]
    kubeconfig = await chart_node.sa_kubeconfig(control_plane, namespace,
                                                pod_spec["serviceAccountName"], tmp_path)
    # The container's user must read it, as a pod reads its projected token.
    kubeconfig.chmod(0o644)
    ca = control_plane.dir / "pki" / "ca.crt"
    # A readable copy of the CA (the control plane keeps its PKI owner-only), mounted where the
    # kubeconfig names it.
    ca_copy = tmp_path / "ca.crt"
    ca_copy.write_bytes(ca.read_bytes())
    ca_copy.chmod(0o644)
    # The webhook's serving pair, as the chart mounts its Secret into the pod.
    [tls] = [d for d in release["docs"] if d["kind"] == "Secret"
             and d["metadata"]["name"].endswith("-webhook-tls")]
    tls_dir = tmp_path / "webhook-tls"
    tls_dir.mkdir()
    for key in ("tls.crt", "tls.key"):
        (tls_dir / key).write_bytes(base64.b64decode(tls["data"][key]))
        (tls_dir / key).chmod(0o644)
    metrics_port = free_port()
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID="AK", ALIBABA_CLOUD_ACCESS_KEY_SECRET="SK")
    argv = [*PODMAN_RUN, "--rm", "--name", container_name,
            "--user", f"{pod_spec['securityContext']['runAsUser']}:"
                      f"{pod_spec['securityContext']['runAsGroup']}",
            "--read-only", "--tmpfs", "/tmp:rw,size=64m,mode=1777",
            "-v", f"{kubeconfig}:/etc/vk-eci/kubeconfig:ro",
            # The kubeconfig names the CA by its host path.
            "-v", f"{ca_copy}:{ca}:ro",
            "-v", f"{tls_dir}:/etc/vk-eci/webhook-tls:ro",
            *[a for k, v in env.items() for a in ("-e", f"{k}={v}")],
            image, *container["args"],
            "--kubeconfig", "/etc/vk-eci/kubeconfig",
            "--metrics-addr", f"127.0.0.1:{metrics_port}",
            "--kubelet-address", "127.0.0.1", "--kubelet-port", str(free_port()),
            "--client-ca-file", str(ca),
            # The chart's webhook port may be taken on this machine: a free one, as for the rest.
            "--webhook-port", str(free_port()),
            # The emulator listens on the test world's host end (a private /30), not loopback.
            "--insecure-eci-endpoint"]
    node = NodeProcess(name=node_name, argv=argv, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       log_path=tmp_path / f"{node_name}.log", metrics_port=metrics_port)
    core = client.CoreV1Api(kube_api)
    await node.start()
    try:
        async def healthz() -> bool:
            try:
                async with aiohttp.ClientSession() as http, http.get(
                        f"http://127.0.0.1:{metrics_port}/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False
        await eventually(healthz, 60, "GET /healthz 200 from the container", node)

        async def ready() -> bool:
            got = await core.read_node(node_name)
            return any(c.type == "Ready" and c.status == "True"
                       for c in got.status.conditions or [])
        await eventually(ready, 60, "node Ready", node)

        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="job"),
            spec=client.V1PodSpec(node_name=node_name, containers=[client.V1Container(
                name="main", image="busybox:1.36",
                command=["sh", "-c", "echo started; sleep infinity"])]))

        async def created() -> bool:
            await core.create_namespaced_pod(namespace, pod)
            return True
        await eventually(created, 30, "pod created")

        async def running() -> bool:
            got = await core.read_namespaced_pod("job", namespace)
            return bool(got.status.phase == "Running")
        await eventually(running, 60, "pod Running", node)

        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        assert "vk_eci_" in text and "CreateContainerGroup" in text

        # Inside: the chart's user, a root file system that refuses writes, a writable /tmp.
        uid = await asyncio.to_thread(_run, ["podman", "exec", container_name, "id", "-u"])
        assert uid.stdout.strip() == "10001", uid.stderr
        write = await asyncio.to_thread(
            _run, ["podman", "exec", container_name, "sh", "-c", "echo x > /etc/probe"])
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        tmp = await asyncio.to_thread(
            _run, ["podman", "exec", container_name, "sh", "-c", "echo x > /tmp/probe"])
        assert tmp.returncode == 0, tmp.stderr

        await core.delete_namespaced_pod("job", namespace, grace_period_seconds=0)
    finally:
        # SIGTERM to `podman run` reaches tini, then the node: its staged shutdown.
        code = await node.stop(grace=30)
        await asyncio.to_thread(_run, [str(control_plane.bin_dir / "kubectl"), "--kubeconfig",
                                       str(control_plane.kubeconfig), "delete", "node",
                                       node_name, "--wait=false"])
    logs = node.logs()
    assert "Traceback" not in logs, logs[-4000:]
    assert code == 0, f"container exited {code}:\n{logs[-3000:]}"
