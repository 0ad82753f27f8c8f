"""Container-group names and tags for pods.

Name: ``<namespace>-<pod name>``, lower-cased, every run of characters outside ``[a-z0-9-]``
(Kubernetes allows ``.`` in pod names) turned into ``-``, no leading/trailing hyphen, 2-128 chars.
When the result is too long or had to be changed, it is cut and suffixed with ``-`` plus 10 hex
digits of SHA-256 of ``namespace/name``, so two different pods never share a name by accident and
the same pod always gets the same name.

Tags (each key once, values as Kubernetes has them; ECI tag values take up to 128 chars, so long
values are cut the same way as names):

==============================  =================================================
``vk-eci.io/cluster``           the cluster name of the node's configuration
``vk-eci.io/node``              the virtual node's name
``k8s.aliyun.com/namespace``    the pod's namespace
``k8s.aliyun.com/pod-name``     the pod's name
``k8s.aliyun.com/pod-uid``      the pod's UID
==============================  =================================================

The node finds its own groups by the first two (cluster and node), so that other nodes' and
clusters' groups in the same account are never touched.
"""

from __future__ import annotations

import hashlib
import re

TAG_CLUSTER = "vk-eci.io/cluster"
TAG_NODE = "vk-eci.io/node"
TAG_NAMESPACE = "k8s.aliyun.com/namespace"
TAG_POD_NAME = "k8s.aliyun.com/pod-name"
TAG_POD_UID = "k8s.aliyun.com/pod-uid"

MIN_NAME, MAX_NAME = 2, 128
MAX_TAG_VALUE = 128
_HASH_LEN = 10
_INVALID = re.compile(r"[^a-z0-9-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def group_name(namespace: str, name: str) -> str:
    """The container-group name of pod ``namespace/name`` (stable, unique per pod name)."""
    raw = f"{namespace}-{name}"
    clean = _INVALID.sub("-", raw.lower()).strip("-")
    clean = re.sub("-{2,}", "-", clean)
    if clean == raw and MIN_NAME <= len(clean) <= MAX_NAME:
        return clean
    suffix = _digest(f"{namespace}/{name}")
    head = clean[:MAX_NAME - _HASH_LEN - 1].rstrip("-")
    return f"{head}-{suffix}" if head else f"p-{suffix}"


def node_tags(cluster: str, node: str) -> dict[str, str]:
    """The tags that select every group of one node of one cluster."""
    return {TAG_CLUSTER: _cut(cluster), TAG_NODE: _cut(node)}


def pod_tags(cluster: str, node: str, namespace: str, name: str, uid: str) -> dict[str, str]:
    """All tags of a pod's group."""
    tags = node_tags(cluster, node)
    tags.update({TAG_NAMESPACE: _cut(namespace), TAG_POD_NAME: _cut(name), TAG_POD_UID: uid})
    return tags


def _cut(value: str) -> str:
    if len(value) <= MAX_TAG_VALUE:
        return value
    return f"{value[:MAX_TAG_VALUE - _HASH_LEN - 1]}-{_digest(value)}"


def tag_value(value: str) -> str:
    """``value`` as an ECI tag value: at most 128 characters, a longer one cut as names are."""
    return _cut(value)


def cluster_tags(cluster: str) -> dict[str, str]:
    """The tag that marks an ECI resource (a group, an image cache) as this cluster's."""
    return {TAG_CLUSTER: tag_value(cluster)}
