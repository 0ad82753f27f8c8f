"""The decisions of the webhook on one AdmissionReview request, pure (no I/O).

Mutation adds, never replaces: a pod matching a profile selector gets the node's nodeSelector
and toleration and the selector's effect annotations/labels that it does not set itself.
Validation refuses a pod that can land on this node (its nodeName, or a toleration of the
node's taint) and breaks the policy, with the one message of
:meth:`vk_eci.cloud.policy.evaluate.Denial.message`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vk_eci.cloud.policy.evaluate import SINGLE_TENANT_HINT, evaluate, facts_of_json
from vk_eci.cloud.policy.profile import Profile

ImageCacheCheck = Callable[[Mapping[str, Any]], str | None]  # the reason it is unusable, or None
# An ImageCache request's pull secrets judged for its requester: the refusal, or None, and the
# annotations to write (the runner hands the cluster side's SubjectAccessReview check).
ImageCacheSecrets = Callable[[Mapping[str, Any]],
                             Awaitable[tuple[str | None, Mapping[str, str]]]]


@dataclass(frozen=True)
class Webhook:
    """What the webhook decides with: all read at each request, so a profile edit applies to
    the next pod."""

    profile: Callable[[], Profile]
    namespace_labels: Callable[[str], Mapping[str, str] | None]
    node_name: str
    node_selector: Mapping[str, str]
    toleration: Mapping[str, str]
    node_gpus: int = 0
    single_tenant: bool = False
    image_cache_check: ImageCacheCheck | None = None
    image_cache_secrets: ImageCacheSecrets | None = None
    taint_key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "taint_key", self.toleration.get("key", ""))


def response(request: Mapping[str, Any], allowed: bool = True, message: str = "",
             patch: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": allowed}
    if not allowed:
        out["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    if patch:
        out["patchType"] = "JSONPatch"
        out["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": out}


def pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _add_map(patch: list[dict[str, Any]], path: str, have: Mapping[str, Any] | None,
             wanted: Mapping[str, str]) -> None:
    missing = {k: v for k, v in wanted.items() if k not in (have or {})}
    if not missing:
        return
    if have is None:
        patch.append({"op": "add", "path": path, "value": dict(missing)})
        return
    patch.extend({"op": "add", "path": f"{path}/{pointer(k)}", "value": v}
                 for k, v in missing.items())


def mutate(hook: Webhook, request: Mapping[str, Any]) -> dict[str, Any]:
    pod = request.get("object") or {}
    if request.get("operation") != "CREATE" or (request.get("kind") or {}).get("kind") != "Pod":
        return response(request)
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace = request.get("namespace") or meta.get("namespace") or "default"
    selector = hook.profile().selector_for(hook.namespace_labels(namespace), meta.get("labels"))
    if selector is None:
        return response(request)
    patch: list[dict[str, Any]] = []
    if not spec.get("nodeName"):
        _add_map(patch, "/spec/nodeSelector", spec.get("nodeSelector"), hook.node_selector)
        tolerations = spec.get("tolerations")
        if not _tolerates(tolerations, hook.taint_key):
            if tolerations is None:
                patch.append({"op": "add", "path": "/spec/tolerations",
                              "value": [dict(hook.toleration)]})
            else:
                patch.append({"op": "add", "path": "/spec/tolerations/-",
                              "value": dict(hook.toleration)})
    _add_map(patch, "/metadata/annotations", meta.get("annotations"),
             selector.effect.annotations)
    _add_map(patch, "/metadata/labels", meta.get("labels"), selector.effect.labels)
    return response(request, patch=patch)


def _tolerates(tolerations: Any, key: str) -> bool:
    for t in tolerations or []:
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") == key and t.get("effect") in (None, "", "NoSchedule"):
            return True
    return False


def lands_here(hook: Webhook, spec: Mapping[str, Any]) -> bool:
    """Whether a pod can run on this node: bound to it, or tolerating its taint."""
    if spec.get("nodeName"):
        return bool(spec.get("nodeName") == hook.node_name)
    return _tolerates(spec.get("tolerations"), hook.taint_key)


def validate(hook: Webhook, request: Mapping[str, Any]) -> dict[str, Any]:
    kind = (request.get("kind") or {}).get("kind")
    obj = request.get("object") or {}
    if kind == "ImageCache" and hook.image_cache_check is not None and \
            request.get("operation") in ("CREATE", "UPDATE"):
        why = hook.image_cache_check(obj)
        return response(request, why is None, f"ImageCache refused: {why}")
    if kind != "Pod" or request.get("operation") != "CREATE" or hook.single_tenant:
        return response(request)
    if not lands_here(hook, obj.get("spec") or {}):
        return response(request)
    namespace = request.get("namespace") or (obj.get("metadata") or {}).get("namespace")
    facts = facts_of_json(obj, namespace)
    denial = evaluate(hook.profile().policy, facts, hook.namespace_labels(facts.namespace),
                      node_gpus=hook.node_gpus)
    if denial is None:
        return response(request)
    return response(request, False, f"{denial.message()}; {SINGLE_TENANT_HINT}")
