"""ImageCache requests at the webhook: their pull secrets judged for the requesting user
(docs/SECURITY.md, "ImageCache pull secrets").

Both configurations call for ImageCache CREATE/UPDATE. ``/mutate`` writes the reviewed
annotation, replacing whatever the author put there, so the controller can trust it
(``--imagecache-trust-admission``); ``/validate`` refuses an object naming a secret its
requester may not read, with one message that names the secret and says "not usable", never
whether it exists. Pods go on to :mod:`vk_eci.admission.review` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vk_eci.admission import review
from vk_eci.admission.review import ImageCacheSecrets, Webhook, response


def _judge(hook: Webhook, request: Mapping[str, Any]) -> ImageCacheSecrets | None:
    """The secrets' judge when this request is one it judges."""
    if (request.get("kind") or {}).get("kind") == "ImageCache" and \
            request.get("operation") in ("CREATE", "UPDATE"):
        return hook.image_cache_secrets
    return None


async def mutate(hook: Webhook, request: Mapping[str, Any]) -> dict[str, Any]:
    judge = _judge(hook, request)
    if judge is None:
        return review.mutate(hook, request)
    _, annotations = await judge(request)
    have = ((request.get("object") or {}).get("metadata") or {}).get("annotations")
    if have is None:
        patch = [{"op": "add", "path": "/metadata/annotations", "value": dict(annotations)}]
    else:  # "add" of an existing member replaces it: the author's value never survives
        patch = [{"op": "add", "path": f"/metadata/annotations/{review.pointer(k)}", "value": v}
                 for k, v in annotations.items()]
    return response(request, patch=patch)


async def validate(hook: Webhook, request: Mapping[str, Any]) -> dict[str, Any]:
    out = review.validate(hook, request)
    judge = _judge(hook, request)
    if judge is None or not out["response"]["allowed"]:
        return out
    refused, _ = await judge(request)
    return out if refused is None else response(request, False, f"ImageCache refused: {refused}")
