"""ImageCache pull secrets judged at admission (docs/SECURITY.md, "ImageCache pull secrets"),
with the real API server calling the node's webhook for users it impersonates: an author who
may read ``team-a:regcred`` may name it, one who may not is refused at apply with a message
that says only "not usable", and the reviewed annotation is the webhook's, whatever the author
wrote. The node runs its ImageCache controller trusting that review, and builds the cache.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fixtures.node import NodeFactory, eventually, free_port
from tests.integration.test_imagecache_controller import (  # noqa: F401 - fixture
    cleanup,
    crd,
    get_ic,
)
from tests.integration.test_security_imagecache_secrets import (
    IMAGE,
    REGISTRY,
    team_a_registry,
)
from vk_eci.cluster.imagecaches.secrets import NOT_USABLE, REVIEWED_ANNOTATION
from vk_eci.kubelet.tls import self_signed

pytestmark = pytest.mark.integration


def cache_webhooks(name: str, url: str, ca: bytes, scope: str) -> tuple[Any, Any]:
    """The chart's ImageCache entries (templates/webhook.yaml), reaching the test's node by
    URL and only the objects labelled for this test."""
    def entry(verb: str) -> dict[str, Any]:
        return {"name": f"{verb}-imagecaches.vk-eci.io", "admissionReviewVersions": ["v1"],
                "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 10,
                "objectSelector": {"matchLabels": {"webhook-test": scope}},
                "rules": [{"apiGroups": ["eci.alibabacloud.com"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["imagecaches"]}],
                "clientConfig": {"url": f"{url}/{verb}",
                                 "caBundle": base64.b64encode(ca).decode()}}
    meta = {"name": name}
    return ({"apiVersion": "admissionregistration.k8s.io/v1",
             "kind": "MutatingWebhookConfiguration", "metadata": meta,
             "webhooks": [entry("mutate")]},
            {"apiVersion": "admissionregistration.k8s.io/v1",
             "kind": "ValidatingWebhookConfiguration", "metadata": meta,
             "webhooks": [entry("validate")]})


def rbac(scope: str, team_a: str, alice: str, bob: str) -> list[dict[str, Any]]:
    """Both users may write ImageCaches; only alice may read team A's registry secret."""
    api = "rbac.authorization.k8s.io"
    users = [{"apiGroup": api, "kind": "User", "name": u} for u in (alice, bob)]
    return [
        {"apiVersion": f"{api}/v1", "kind": "ClusterRole", "metadata": {"name": scope},
         "rules": [{"apiGroups": ["eci.alibabacloud.com"], "resources": ["imagecaches"],
                    "verbs": ["get", "list", "create", "update", "patch"]}]},
        {"apiVersion": f"{api}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": scope},
         "roleRef": {"apiGroup": api, "kind": "ClusterRole", "name": scope}, "subjects": users},
        {"apiVersion": f"{api}/v1", "kind": "Role",
         "metadata": {"name": "read-regcred", "namespace": team_a},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                    "resourceNames": ["regcred"]}]},
        {"apiVersion": f"{api}/v1", "kind": "RoleBinding",
         "metadata": {"name": "alice-regcred", "namespace": team_a},
         "roleRef": {"apiGroup": api, "kind": "Role", "name": "read-regcred"},
         "subjects": users[:1]}]


def image_cache(name: str, scope: str, refs: list[str],
                annotations: dict[str, str] | None = None) -> str:
    return json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": name, "labels": {"webhook-test": scope},
                                    "annotations": annotations or {}},
                       "spec": {"images": [IMAGE], "imagePullSecrets": refs}})


async def test_only_an_author_who_may_read_the_secret_may_name_it(
        crd: Any, node_factory: NodeFactory, kube_api: client.ApiClient,  # noqa: F811
        control_plane: Any, emulator_realtime: Any, namespace: str, tmp_path: Path) -> None:
    cp, team_a = control_plane, namespace
    scope = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{scope}", f"bob-{scope}"
    await team_a_registry(cp, emulator_realtime, team_a)
    for obj in rbac(f"ic-author-{scope}", team_a, alice, bob):
        await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(obj))
    host = cp.network.node_ip if cp.network else "127.0.0.1"
    cert, key = self_signed("webhook", [host])
    (tmp_path / "wh.crt").write_bytes(cert)
    (tmp_path / "wh.key").write_bytes(key)
    port = free_port()
    node = await node_factory(
        profile_configmap=f"{namespace}/eci-profile", webhook_port=str(port),
        webhook_tls_cert_file=str(tmp_path / "wh.crt"),
        webhook_tls_key_file=str(tmp_path / "wh.key"),
        imagecache_controller=True, imagecache_trust_admission=True,
        imagecache_lease_namespace=namespace, imagecache_lease_name=f"ic-{scope}")
    reg = client.AdmissionregistrationV1Api(kube_api)
    mutating, validating = cache_webhooks(f"vk-eci-ic-{scope}", f"https://{host}:{port}",
                                          cert, scope)
    ok, refused, missing, forged = (f"{scope}-{n}" for n in ("ok", "refused", "missing",
                                                             "forged"))

    async def as_user(user: str, manifest: str) -> Any:
        return await asyncio.to_thread(cp.kubectl, "--as", user, "apply", "-f", "-",
                                       check=False, input=manifest)

    def reviewed(obj: dict[str, Any] | None) -> Any:
        raw = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(REVIEWED_ANNOTATION)
        return json.loads(raw) if raw is not None else None

    try:
        await reg.create_mutating_webhook_configuration(mutating)
        await reg.create_validating_webhook_configuration(validating)
        # Alice may read the secret: admitted, and whatever she wrote as the review is
        # replaced by the webhook's (here she also claimed a secret she never named).
        claim = {REVIEWED_ANNOTATION: json.dumps([f"{team_a}:regcred", f"{team_a}:other"])}
        done = await eventually(lambda: _applied(as_user(alice, image_cache(
            ok, scope, [f"{team_a}:regcred"], claim))), 60, "alice's ImageCache admitted", node)
        assert done.returncode == 0, done.stderr
        assert reviewed(await get_ic(cp, ok)) == [f"{team_a}:regcred"]

        # Bob may not: refused at apply, naming the secret, saying only "not usable" — the
        # very same words for a secret that does not exist.
        said = []
        for name, ref in ((refused, f"{team_a}:regcred"), (missing, f"{team_a}:nope")):
            out = await as_user(bob, image_cache(name, scope, [ref]))
            assert out.returncode != 0 and await get_ic(cp, name) is None
            assert f"image pull secret {ref}: {NOT_USABLE}" in out.stderr, out.stderr
            said.append(out.stderr.replace(ref, "REF").replace(name, "NAME"))
        assert said[0] == said[1] and "not found" not in said[0]

        # Bob forging the review on an object of his own: overwritten with the truth (nothing).
        out = await as_user(bob, image_cache(forged, scope, [], {
            REVIEWED_ANNOTATION: json.dumps([f"{team_a}:regcred"])}))
        assert out.returncode == 0, out.stderr
        assert reviewed(await get_ic(cp, forged)) == []
        # ...and on alice's object, on update: the review stays the one alice's create earned.
        out = await as_user(bob, image_cache(ok, scope, [f"{team_a}:regcred"], {
            REVIEWED_ANNOTATION: json.dumps([f"{team_a}:regcred", f"{team_a}:other"])}))
        assert out.returncode == 0, out.stderr
        assert reviewed(await get_ic(cp, ok)) == [f"{team_a}:regcred"]

        # The node's controller trusts the review and builds alice's cache with the secret.
        async def ready() -> Any:
            status = ((await get_ic(cp, ok)) or {}).get("status") or {}
            return status.get("phase") == "Ready"
        await eventually(ready, 90, "alice's ImageCache Ready", node)
        # (Bob's own object, naming no secret, is built without one.)
        servers = [r.get("ImageRegistryCredential.1.Server")
                   for r in emulator_realtime.recorded("CreateImageCache")]
        assert sorted(servers, key=str) == [None, REGISTRY]
    finally:
        for call in (reg.delete_mutating_webhook_configuration,
                     reg.delete_validating_webhook_configuration):
            with contextlib.suppress(ApiException):
                await call(f"vk-eci-ic-{scope}")
        await cleanup(cp, ok, refused, missing, forged)
        for kind in ("clusterrolebinding", "clusterrole"):
            cp.kubectl("delete", kind, f"ic-author-{scope}", "--ignore-not-found", check=False)


async def _applied(run: Any) -> Any:
    """A kubectl apply's result once the webhook answers (before it listens: not yet)."""
    out = await run
    return out if out.returncode == 0 or "not usable" in out.stderr else None
