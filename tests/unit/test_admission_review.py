"""The webhook's decisions on AdmissionReview requests: routing by the profile's selectors
(adds, never replaces), policy refusals with one message, ImageCache checks."""

from __future__ import annotations

import base64
import json
from typing import Any

from vk_eci.admission.review import Webhook, mutate, validate
from vk_eci.cloud.policy.profile import parse_profile

K = "k8s.aliyun.com/"
TOL = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
PROFILE = parse_profile({
    "selectors": '[{"name": "ml", "namespaceSelector": {"matchLabels": {"eci": "true"}},'
                 ' "effect": {"annotations": {"k8s.aliyun.com/eci-ntp-server": "1.1.1.1"},'
                 ' "labels": {"via": "eci"}}}]',
    "policy": "rules: [{namespaces: [a], allow: {ramRoles: [role-a]}}]"})


def hook(**kw: Any) -> Webhook:
    labels = {"a": {"eci": "true"}, "b": {}}
    return Webhook(lambda: PROFILE, labels.get, "vk", {"kubernetes.io/hostname": "vk"}, TOL,
                   image_cache_check=lambda o: None if o.get("spec") else "spec: missing", **kw)


def request(ns: str, pod: dict[str, Any], kind: str = "Pod") -> dict[str, Any]:
    return {"uid": "u1", "kind": {"kind": kind}, "operation": "CREATE", "namespace": ns,
            "object": pod}


def patch_of(review: dict[str, Any]) -> list[dict[str, Any]]:
    raw = review["response"].get("patch")
    return json.loads(base64.b64decode(raw)) if raw else []


def test_a_pod_in_a_selected_namespace_is_routed_with_the_effect() -> None:
    pod = {"metadata": {"labels": {"app": "x"}, "annotations": {K + "eci-ntp-server": "mine"}},
           "spec": {"containers": [{"name": "c"}]}}
    review = mutate(hook(), request("a", pod))
    assert review["response"]["allowed"] and review["response"]["uid"] == "u1"
    ops = {p["path"]: p["value"] for p in patch_of(review)}
    assert ops == {"/spec/nodeSelector": {"kubernetes.io/hostname": "vk"},
                   "/spec/tolerations": [TOL], "/metadata/labels/via": "eci"}  # own ntp kept
    assert patch_of(mutate(hook(), request("b", pod))) == []


def test_policy_refusal_names_annotation_value_and_rule_for_pods_landing_here() -> None:
    pod = {"metadata": {"annotations": {K + "eci-ram-role-name": "role-a"}},
           "spec": {"tolerations": [TOL], "containers": [{"name": "c"}]}}
    assert validate(hook(), request("a", pod))["response"]["allowed"]
    refused = validate(hook(), request("b", pod))["response"]
    assert not refused["allowed"] and refused["status"]["code"] == 403
    message = refused["status"]["message"]
    assert K + "eci-ram-role-name" in message and "'role-a'" in message
    assert "rule ramRoles" in message and "single-tenant" in message
    assert validate(hook(single_tenant=True), request("b", pod))["response"]["allowed"]
    # a pod that cannot land on the virtual node is none of its business
    elsewhere = {**pod, "spec": {"containers": [{"name": "c"}]}}
    assert validate(hook(), request("b", elsewhere))["response"]["allowed"]


def test_image_caches_are_checked() -> None:
    bad = validate(hook(), request("", {"metadata": {"name": "c"}}, kind="ImageCache"))
    assert not bad["response"]["allowed"] and "spec: missing" in bad["response"]["status"][
        "message"]
    assert validate(hook(), request("", {"spec": {"images": ["x"]}}, kind="ImageCache"))[
        "response"]["allowed"]


async def test_image_caches_get_the_reviewed_annotation_and_refusals_of_their_secrets() -> None:
    from vk_eci.admission import imagecache

    async def judge(req: Any) -> tuple[str | None, dict[str, str]]:
        refs = req["object"]["spec"].get("imagePullSecrets", [])
        refused = "image pull secret b:y: not usable" if "b:y" in refs else None
        return refused, {"reviewed": json.dumps([r for r in refs if r != "b:y"])}

    h = hook(image_cache_secrets=judge)
    forged = request("", {"metadata": {"annotations": {"reviewed": "forged", "x": "1"}},
                          "spec": {"imagePullSecrets": ["a:x"]}}, kind="ImageCache")
    assert patch_of(await imagecache.mutate(h, forged)) == [
        {"op": "add", "path": "/metadata/annotations/reviewed", "value": '["a:x"]'}]
    bare = request("", {"metadata": {}, "spec": {"imagePullSecrets": ["b:y"]}}, kind="ImageCache")
    assert patch_of(await imagecache.mutate(h, bare)) == [
        {"op": "add", "path": "/metadata/annotations", "value": {"reviewed": "[]"}}]
    refused = (await imagecache.validate(h, bare))["response"]
    assert not refused["allowed"]
    assert refused["status"]["message"] == "ImageCache refused: image pull secret b:y: not usable"
    assert (await imagecache.validate(h, forged))["response"]["allowed"]
    # Pods still go through the profile's decisions.
    pod = request("a", {"metadata": {}, "spec": {"containers": [{"name": "c"}]}})
    assert await imagecache.mutate(h, pod) == mutate(h, pod)
