"""Attack: an ECI error that echoes credentials back. Real APIs do quote the
parameters they refuse; the node passes an error's message on to its log and to the pod's
event, and a tenant reads events. Through ``vk-eci run``, the official SDK and the emulator,
with a create refused by a message holding a bearer token, a quoted password with spaces, a
base64 docker config and URL-encoded keys: none of them may reach the node's log or the API
server's events, while the refusal itself is still reported."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, eventually
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration
DOCKER = base64.b64encode(json.dumps({"auths": {"registry.example.com": {
    "username": "bob", "password": "hunter2hunter2",
    "auth": base64.b64encode(b"bob:hunter2hunter2").decode()}}}).encode()).decode()
SECRETS = {
    "bearer": ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
               "eyJhbGciOiJSUzI1NiJ9"),
    "quoted": ('password="correct horse battery staple"', "horse battery"),
    "docker": (f'ImageRegistryCredential {{".dockerconfigjson": "{DOCKER}"}}', DOCKER[:40]),
    "urlencoded": ("AccessKeySecret%3Dabc%2Bdef%2F123&Action=Create", "abc%2Bdef"),
}


async def test_credentials_echoed_by_an_eci_error_reach_neither_log_nor_event(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Emulator) -> None:
    echoed = "; ".join(text for text, _ in SECRETS.values())
    emulator_realtime.faults.inject("CreateContainerGroup", "InvalidParameter", status=400,
                                    message=f"The specified parameter is not valid: {echoed}")
    node = await node_factory()
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="echo"), spec=client.V1PodSpec(
            node_name=node.name, containers=[client.V1Container(
                name="main", image="busybox:1.36")])))

    async def failure_events() -> list[Any]:
        events = await core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=echo")
        return [e for e in events.items if e.reason == "ProviderFailed"]

    (event,) = await eventually(failure_events, 60, "the ProviderFailed event", node)
    # The refusal is still said, with ECI's code; the credentials are masked.
    assert "InvalidParameter" in event.message and "***" in event.message, event.message
    await eventually(lambda: _has(node.logs(), "InvalidParameter"), 10, "the log line", node)
    logs = node.logs()
    for name, (_, secret) in SECRETS.items():
        assert secret not in event.message, (name, event.message)
        assert secret not in logs, (name, [line for line in logs.splitlines() if secret in line])
    assert "hunter2" not in logs and "hunter2" not in event.message


async def _has(text: str, what: str) -> bool:
    return what in text
