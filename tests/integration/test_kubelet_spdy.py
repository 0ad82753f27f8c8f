"""Exec through an API server older than 1.36, which calls the kubelet with SPDY/3.1: kubectl
(WebSocket to the API server) → kube-apiserver 1.35 (translates to SPDY) → the node's kubelet
API → ECI's exec stream in the emulator. Same behaviours as over WebSocket: exit codes, piped
stdin, ``kubectl exec -it`` on a real terminal, ``kubectl cp`` both ways."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config

from tests.fixtures.node import NodeProcess, eventually, free_port, node_command, node_env
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.pod_io import EciPodIO
from vk_eci.controlplane.state import ControlPlane
from vk_eci.emulator import Emulator
from vk_eci.kubelet.server import KubeletConfig, KubeletServer

from .terminal import interactive_shell
from .test_kubelet_api import Kubelet, copy_round_trip, create_pod, register_node

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def old_kubelet(legacy_control_plane: ControlPlane, emulator_realtime: Emulator,
                      ) -> AsyncIterator[Kubelet]:
    cp = legacy_control_plane
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cp.kubeconfig),
                                  client_configuration=configuration)
    node = f"vk-{uuid.uuid4().hex[:8]}"
    eci = EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                    endpoint=emulator_realtime.endpoint, protocol="http",
                                    default_rate_limit=None))
    pod_io = EciPodIO(eci, cluster_name="kubelet-test", node_name=node)
    async with client.ApiClient(configuration) as api:
        server = KubeletServer(KubeletConfig(node_name=node, host="127.0.0.1", port=0,
                                             client_ca_file=cp.dir / "pki" / "ca.crt"),
                               api, pod_io)
        await server.start()
        try:
            yield Kubelet(server, eci, pod_io, node, cp)
        finally:
            await server.stop()


async def test_kubectl_exec_tty_stdin_exit_codes_and_cp_over_spdy(
        old_kubelet: Kubelet, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    k, ns = old_kubelet, f"t-{uuid.uuid4().hex[:8]}"
    assert k.cp.version.startswith("v1.35."), k.cp.version
    caplog.set_level(logging.INFO, logger="vk_eci.kubelet")
    await k.kubectl("create", "namespace", ns)
    # No controller-manager runs beside this API server: the pod's service account by hand.
    await k.kubectl("create", "serviceaccount", "default", "-n", ns)
    await register_node(k, websockets=False)
    try:
        await k.run_pod(ns, "web", "sleep infinity")
        await create_pod(k, ns, "web")

        out = await k.kubectl("exec", "-n", ns, "web", "--", "sh", "-c",
                              "echo over spdy; nosuch; exit 4", check=False)
        assert (out.returncode, out.stdout) == (4, "over spdy\n"), out.stderr
        assert "sh: nosuch: not found" in out.stderr
        out = await asyncio.to_thread(k.cp.kubectl, "exec", "-i", "-n", ns, "web", "--", "cat",
                                      input="through\nstdin\n")
        assert out.stdout == "through\nstdin\n"

        kubectl = [str(k.cp.bin_dir / "kubectl"), "--kubeconfig", str(k.cp.kubeconfig)]
        code, screen = await asyncio.to_thread(interactive_shell, kubectl, ns, "web")
        assert code == 7, screen
        await copy_round_trip(k.cp, ns, "web", tmp_path)
        # Every one of those reached the node as SPDY, none as a WebSocket.
        spdy = [r for r in caplog.records if r.getMessage().startswith("exec (SPDY) in")]
        plain = [r for r in caplog.records if r.getMessage().startswith("exec in")]
        assert len(spdy) >= 6 and not plain, [r.getMessage() for r in caplog.records]
    finally:
        await k.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        await k.kubectl("delete", "node", k.node, check=False)


async def test_the_node_process_registers_and_execs_on_an_older_api_server(
        legacy_control_plane: ControlPlane, emulator_realtime: Emulator, tmp_path: Path) -> None:
    """``vk-eci run`` itself against kube-apiserver 1.35: Ready, the pod Running, exec over
    SPDY with its exit code and stdin."""
    cp, name = legacy_control_plane, f"vk-{uuid.uuid4().hex[:8]}"
    port = free_port()
    node = NodeProcess(name=name, argv=node_command(cp.kubeconfig, emulator_realtime.endpoint,
                                                    name, port),
                       env=node_env(), log_path=tmp_path / "node.log", metrics_port=port)
    await node.start()
    try:
        # No controllers here: the service account, and no token volume (its CA ConfigMap is
        # published by kube-controller-manager).
        await asyncio.to_thread(cp.kubectl, "create", "serviceaccount", "default", "-n",
                                "default", check=False)
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"p-{name}", "namespace": "default"},
               "spec": {"nodeName": name, "automountServiceAccountToken": False,
                        "containers": [{"name": "main", "image": "busybox:1.36",
                                        "command": ["sleep", "infinity"]}]}}
        await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(pod))

        async def running() -> bool:
            out = await asyncio.to_thread(cp.kubectl, "get", "pod", f"p-{name}", "-o",
                                          "jsonpath={.status.phase}", check=False)
            return out.stdout == "Running"

        await eventually(running, 60, "the pod Running on the 1.35 API server", node)
        out = await asyncio.to_thread(cp.kubectl, "exec", f"p-{name}", "--", "sh", "-c",
                                      "echo via the node; exit 2", check=False)
        assert (out.returncode, out.stdout) == (2, "via the node\n"), out.stderr
        out = await asyncio.to_thread(cp.kubectl, "exec", "-i", f"p-{name}", "--", "cat",
                                      input="abc\n")
        assert out.stdout == "abc\n"
        assert node.logs().count("exec (SPDY) in") == 2, node.logs()[-3000:]
    finally:
        await node.stop()
        await asyncio.to_thread(cp.kubectl, "delete", "pod", f"p-{name}", "--force",
                                "--grace-period=0", check=False)
        await asyncio.to_thread(cp.kubectl, "delete", "node", name, check=False)
