"""``/pods`` and ``/runningpods/``: the node's pods as the kubelet lists them (v1 ``PodList``).

``/pods`` is what the kubelet's pod manager holds: the pods bound to this node, spec and status
as the API server stores them (one field-selected LIST per request: a debugging endpoint, not a
hot path). ``/runningpods/`` is what the runtime reports: the kubelet builds each item with
``kubecontainer.Pod.ToAPIPod`` — name, namespace, uid and the running containers' name and
image, nothing else — and encodes it with Go's JSON rules, so empty structs (``resources``,
``status``) appear as ``{}``. The same shape is made here from the node's ECI container groups.
An empty list is ``"items": []``, never ``null``: the Go kubelet writes ``null`` for its nil
slice, but clients that iterate ``items`` (jq, scripts, typed decoders) break on it, and the
virtual-kubelet library, whose users' tools expect its answers, writes ``[]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kubernetes_asyncio import client

from vk_eci.provider import RunningPod


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}


def running_pod_list(pods: Sequence[RunningPod]) -> dict[str, Any]:
    """The ``/runningpods/`` body (``items`` an empty list when there is no pod)."""
    items = []
    for pod in pods:
        meta: dict[str, Any] = {"name": pod.name, "namespace": pod.namespace}
        if pod.uid:
            meta["uid"] = pod.uid
        containers = []
        for name, image in pod.containers:
            container: dict[str, Any] = {"name": name}
            if image:
                container["image"] = image
            container["resources"] = {}
            containers.append(container)
        items.append({"metadata": meta, "spec": {"containers": containers}, "status": {}})
    return _list(items)


async def bound_pod_list(api: client.ApiClient, node: str) -> dict[str, Any]:
    """The ``/pods`` body: every pod whose ``spec.nodeName`` is this node, as stored."""
    core = client.CoreV1Api(api)
    # Raw JSON: the pods exactly as stored, not a round trip through the client's models.
    response: Any = await core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node}", _preload_content=False)
    listed = json.loads(await response.read())
    items = sorted(listed.get("items") or [],
                   key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
    return _list(items)
