"""The admission webhook with the real API server calling it (on the node network, as it calls
the kubelet API): selector routing, hot reload of the profile, each denied family refused at
apply. The webhook configurations are scoped by a namespace label of this test only, so other
tests' pods never pass through them.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fixtures.node import NodeFactory, eventually, free_port
from tests.integration.test_profile_policy import DENIED, put_profile, requests_of, running
from vk_eci.kubelet.tls import self_signed

pytestmark = pytest.mark.integration

K = "k8s.aliyun.com/"
TOLERATE = [{"key": "virtual-kubelet.io/provider", "operator": "Exists",
             "effect": "NoSchedule"}]


def webhook_configs(name: str, url: str, ca: bytes, scope: str) -> tuple[Any, Any]:
    common: dict[str, Any] = {
        "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
        "timeoutSeconds": 5, "namespaceSelector": {"matchLabels": {"webhook-test": scope}}}
    pods = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
             "resources": ["pods"]}]
    bundle = base64.b64encode(ca).decode()
    mutating = {"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration", "metadata": {"name": name},
                "webhooks": [{"name": "mutate.vk-eci.io", **common, "rules": pods,
                              "clientConfig": {"url": f"{url}/mutate", "caBundle": bundle}}]}
    validating = {"apiVersion": "admissionregistration.k8s.io/v1",
                  "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
                  "webhooks": [{"name": "validate.vk-eci.io", **common, "rules": pods,
                                "clientConfig": {"url": f"{url}/validate",
                                                 "caBundle": bundle}}]}
    return mutating, validating


def pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> Any:
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.25",
                                     "resources": {"requests": {"cpu": "10m"}}}], **spec}}


async def test_webhook_routes_reloads_and_refuses_at_apply(
        node_factory: NodeFactory, kube_api: client.ApiClient, control_plane: Any,
        namespace: str, tmp_path: Path, emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    reg = client.AdmissionregistrationV1Api(kube_api)
    scope = uuid.uuid4().hex[:8]
    host = control_plane.network.node_ip if control_plane.network else "127.0.0.1"
    cert, key = self_signed("webhook", [host])
    (tmp_path / "wh.crt").write_bytes(cert)
    (tmp_path / "wh.key").write_bytes(key)
    port = free_port()
    # The profile lives in the node's namespace (here: the test's); team namespaces by label.
    team_a, team_b = f"a-{scope}", f"b-{scope}"
    await put_profile(core, namespace, {
        "vSwitchIds": "vsw-one",
        "selectors": yaml.safe_dump([{"name": "to-eci", "namespaceSelector": {
            "matchLabels": {"eci": scope}}, "effect": {
                "annotations": {K + "eci-ntp-server": "100.100.5.1"},
                "labels": {"routed": "by-profile"}}}]),
        "policy": yaml.safe_dump({"rules": [{"name": "team-a", "namespaces": [team_a],
                                             "allow": {"ramRoles": ["team-a-role"]}}]})})
    node = await node_factory(profile_configmap=f"{namespace}/eci-profile",
                              webhook_port=str(port),
                              webhook_tls_cert_file=str(tmp_path / "wh.crt"),
                              webhook_tls_key_file=str(tmp_path / "wh.key"))
    mutating, validating = webhook_configs(f"vk-eci-{scope}", f"https://{host}:{port}", cert,
                                           scope)
    for ns, labels in ((team_a, {"eci": scope}), (team_b, {})):
        await core.create_namespace({"metadata": {"name": ns, "labels": {
            "webhook-test": scope, **labels}}})
    try:
        await reg.create_mutating_webhook_configuration(mutating)
        await reg.create_validating_webhook_configuration(validating)
        # Selector routing: no nodeSelector, no toleration; lands on the node, injected.
        first = await eventually(lambda: core.create_namespaced_pod(
            team_a, pod("routed", {K + "eci-ram-role-name": "team-a-role"})), 60,
            "pod admitted (service account, webhook up)", node)
        assert first.spec.node_selector == {"kubernetes.io/hostname": node.name}
        assert first.metadata.annotations[K + "eci-ntp-server"] == "100.100.5.1"
        assert first.metadata.labels == {"routed": "by-profile"}
        got = await eventually(lambda: running(core, team_a, "routed"), 90, "routed Running",
                               node)
        assert got.spec.node_name == node.name
        [req] = requests_of(emulator_realtime, got.metadata.uid)
        assert req["VSwitchId"] == "vsw-one" and req["NtpServer.1"] == "100.100.5.1"

        # Hot reload: the next pod gets the new vSwitch; the node never restarted.
        cm = await core.read_namespaced_config_map("eci-profile", namespace)
        cm.data["vSwitchIds"] = "vsw-two"
        edited = await core.replace_namespaced_config_map("eci-profile", namespace, cm)
        version = edited.metadata.resource_version
        await eventually(lambda: _async(f"(version {version})" in node.logs()), 30,
                         "the node took the edited profile", node)
        second = await core.create_namespaced_pod(team_a, pod("next"))
        await eventually(lambda: running(core, team_a, "next"), 90, "next Running", node)
        [req] = requests_of(emulator_realtime, second.metadata.uid)
        assert req["VSwitchId"] == "vsw-two" and node.starts == 1

        # Each denied family is refused at apply, naming annotation, value and rule.
        for family, annotations in DENIED.items():
            with pytest.raises(ApiException) as refused:
                await core.create_namespaced_pod(team_b, pod(
                    family, annotations, tolerations=TOLERATE))
            body = refused.value.body if isinstance(refused.value.body, str) else ""
            key, value = next(iter(annotations.items()))
            assert refused.value.status == 403, body
            assert key in body and value in body and "rule " in body, body
        # team-a's own role passes, and a pod that cannot reach the node is not judged
        await core.create_namespaced_pod(team_b, pod("elsewhere", DENIED["ram-role"]))
    finally:
        for call in (reg.delete_mutating_webhook_configuration,
                     reg.delete_validating_webhook_configuration):
            with contextlib.suppress(ApiException):
                await call(f"vk-eci-{scope}")
        for ns in (team_a, team_b):
            control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


async def _async(value: Any) -> Any:
    return value
