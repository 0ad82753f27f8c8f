"""The profile's ``enableClusterIp`` (docs/PROFILE.md, docs/BEHAVIOUR.md §11): ``false`` turns
the injected kube-proxy off for new pods, like ``--cluster-ip-mode none``, hot-reloaded;
``true`` or absent leaves the flag's choice. Real control plane, a node with the kube-proxy
mode on, the emulator's CreateContainerGroup requests read back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_cluster_services import IDLE, container_names, created, kubectl, pod
from tests.integration.test_profile_policy import put_profile
from vk_eci.cloud.api.naming import PROXY_CONTAINER

pytestmark = pytest.mark.integration


async def test_enable_cluster_ip_false_in_the_profile_gives_new_pods_no_proxy(
        control_plane: Any, node_factory: NodeFactory, kube_api: client.ApiClient,
        emulator_realtime: Any, namespace: str) -> None:
    cp, ns = control_plane, namespace
    core = client.CoreV1Api(kube_api)
    await kubectl(cp, "create", "serviceaccount", "vk-eci-kube-proxy", "-n", ns)
    await put_profile(core, ns, {"enableClusterIp": "false"})
    node = await node_factory(cluster_ip_mode="kube-proxy", kube_proxy_namespace=ns,
                              profile_configmap=f"{ns}/eci-profile")

    async def proxied(name: str) -> bool:
        await kubectl(cp, "apply", "-n", ns, "-f", "-",
                      stdin=yaml.safe_dump(pod(name, node.name, IDLE)))

        async def sent() -> Any:
            await asyncio.sleep(0)
            try:
                return created(emulator_realtime, name)
            except AssertionError:
                return None
        request = await eventually(sent, 60, f"{name}'s group created", node)
        return PROXY_CONTAINER in container_names(request)

    assert not await proxied("off")
    # Hot reload: true (or the key gone) gives the next pod the flag's proxy again.
    for n, data in enumerate(({"enableClusterIp": "true"}, {})):
        cm = await core.read_namespaced_config_map("eci-profile", ns)
        cm.data = data
        version = (await core.replace_namespaced_config_map("eci-profile", ns, cm)
                   ).metadata.resource_version

        async def took(v: str = version) -> bool:
            await asyncio.sleep(0)
            return f"(version {v})" in node.logs()
        await eventually(took, 30, "the node took the edited profile", node)
        assert await proxied(f"on-{n}")
    assert node.starts == 1
    assert json.dumps(created(emulator_realtime, "off")).count(PROXY_CONTAINER) == 0
