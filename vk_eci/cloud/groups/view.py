"""How the provider reads a container group: its pod's key and tags, which of two groups of
one name to keep, and a minimal pod for a group nobody told us about."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.api import naming
from vk_eci.cloud.groups.allocated import allocated
from vk_eci.cloud.groups.status import group_to_pod_status
from vk_eci.provider import Pod

FINAL = ("Succeeded", "Failed", "Expired", "ScheduleFailed")
# ECI statuses on the way to another one soon: while a group is in one, polling fast pays off.
MOVING = ("Scheduling", "Pending", "Restarting", "Updating", "Terminating")


def key(namespace: str | None, name: str) -> str:
    """The provider's key of a pod: its namespace and name as its group's tags hold them."""
    return sys.intern(naming.pod_key(namespace or "default", name))  # as object_key


def group_key(group: Any) -> str:
    """The key of the pod a group says it belongs to (its tags, never its name, which differs
    between naming schemes); a group without those tags keys by its name (no ``/`` in it)."""
    namespace, name = tag(group, naming.TAG_NAMESPACE), tag(group, naming.TAG_POD_NAME)
    if namespace is None or name is None:
        return group.container_group_name or ""
    return sys.intern(f"{namespace}/{name}")


def tags(group: Any) -> dict[str, str]:
    return {t.key: str(t.value) for t in group.tags or [] if t.key}


def carries(group: Any, wanted: Mapping[str, str]) -> bool:
    """Whether ``group`` carries every tag in ``wanted``. Checked on every group a tag-filtered
    call returns: what the node acts on is what it checked itself, not what a filter let
    through (docs/SECURITY.md, item 1)."""
    have = tags(group)
    return all(have.get(k) == v for k, v in wanted.items())


def tag(group: Any, name: str) -> str | None:
    for item in group.tags or []:
        if item.key == name:
            return str(item.value)
    return None


def prefer(prev: Any | None, group: Any) -> bool:
    """Two groups of one name (a re-created pod): whether ``group`` is the one to keep over
    ``prev`` (the live one, else the newest)."""
    return prev is None or (prev.status in FINAL and group.status not in FINAL) or (
        (prev.status in FINAL) == (group.status in FINAL)
        and (group.creation_time or "") > (prev.creation_time or ""))


def pod_from_group(group: Any) -> Pod:
    """A minimal pod for a group (name, namespace, UID from its tags; containers from ECI)."""
    namespace = tag(group, naming.TAG_NAMESPACE) or "default"
    name = tag(group, naming.TAG_POD_NAME) or group.container_group_name
    meta = V1ObjectMeta(name=name, namespace=namespace, uid=tag(group, naming.TAG_POD_UID),
                        annotations={"vk-eci.io/container-group-id": group.container_group_id,
                                     **allocated(group)})
    containers = [V1Container(name=c.name, image=c.image) for c in group.containers or []]
    inits = [V1Container(name=c.name, image=c.image) for c in group.init_containers or []]
    pod = V1Pod(api_version="v1", kind="Pod", metadata=meta,
                spec=V1PodSpec(containers=containers, init_containers=inits or None,
                               node_name=tag(group, naming.TAG_NODE)))
    pod.status = group_to_pod_status(group, pod)
    return pod
