"""Container-group names and tags for pods.

Name: ``<namespace>-<pod name>`` made valid for ECI (lower-cased, every run of characters
outside ``[a-z0-9-]`` turned into ``-``, cut to leave room) and always followed by ``-`` and a
128-bit digest (26 base32 characters of SHA-256 of ``namespace/name``). The readable head alone
is ambiguous (``team``/``prod-db-0`` and ``team-prod``/``db-0`` read alike, as do ``a.b`` and
``a-b``); the digest of the unambiguous ``namespace/name`` (``/`` is in neither) is not, and
finding a second pod name with the same digest is a 2^128 search. Names are for people and for
ECI's limits only: the node never identifies a group by its name but by its tags (namespace,
pod name, pod UID), so groups made under the older naming (``<namespace>-<name>`` kept as is,
10 hex digits when changed) are found and adopted as before.

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
clusters' groups in the same account are never touched, and a pod's group by all of them
(:func:`belongs_to` checks every group found). A cut tag value keeps its 10 hex digits (so that
existing groups still match); it can only be a pod name over 128 characters, and the UID tag,
never cut, decides which pod a group is.
"""

from __future__ import annotations

import base64
import hashlib
import re

TAG_CLUSTER = "vk-eci.io/cluster"
TAG_NODE = "vk-eci.io/node"
TAG_NAMESPACE = "k8s.aliyun.com/namespace"
TAG_POD_NAME = "k8s.aliyun.com/pod-name"
TAG_POD_UID = "k8s.aliyun.com/pod-uid"

MIN_NAME, MAX_NAME = 2, 128
MAX_TAG_VALUE = 128
# The container and volume the node adds to each group for Service access
# (cloud/translation/service_access.py): reserved, never the tenant's.
PROXY_CONTAINER = "vk-eci-kube-proxy"
_HASH_LEN = 10  # of cut tag values (see _cut)
_INVALID = re.compile(r"[^a-z0-9-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def _strong_digest(text: str) -> str:
    """128 bits of SHA-256 in the 26 characters of lower-case base32 (valid in ECI names)."""
    raw = hashlib.sha256(text.encode()).digest()[:16]
    return base64.b32encode(raw).decode().rstrip("=").lower()


def group_name(namespace: str, name: str) -> str:
    """The container-group name of pod ``namespace/name`` (stable; distinct pods never share
    one, see the module docstring)."""
    suffix = _strong_digest(f"{namespace}/{name}")
    clean = re.sub("-{2,}", "-", _INVALID.sub("-", f"{namespace}-{name}".lower())).strip("-")
    head = clean[:MAX_NAME - len(suffix) - 1].rstrip("-")
    return f"{head or 'p'}-{suffix}"


def pod_key(namespace: str, name: str) -> str:
    """What a pod's group says it belongs to (its namespace and name tags), as one string: the
    provider's key, the same for a group of any naming scheme."""
    return f"{_cut(namespace)}/{_cut(name)}"


def node_tags(cluster: str, node: str) -> dict[str, str]:
    """The tags that select every group of one node of one cluster."""
    return {TAG_CLUSTER: _cut(cluster), TAG_NODE: _cut(node)}


def pod_tags(cluster: str, node: str, namespace: str, name: str,
             uid: str | None) -> dict[str, str]:
    """All tags of a pod's group (without the UID tag when ``uid`` is None: the tags that
    select the groups of one pod name, as a lookup filter)."""
    tags = node_tags(cluster, node)
    tags.update({TAG_NAMESPACE: _cut(namespace), TAG_POD_NAME: _cut(name)})
    if uid is not None:
        tags[TAG_POD_UID] = uid
    return tags


def belongs_to(tags: dict[str, str], namespace: str, name: str, uid: str | None) -> bool:
    """Whether a group's ``tags`` say it is pod ``namespace/name`` (with UID ``uid`` when
    given): checked on every group found, whatever filter found it."""
    return (tags.get(TAG_NAMESPACE) == _cut(namespace) and tags.get(TAG_POD_NAME) == _cut(name)
            and (uid is None or tags.get(TAG_POD_UID) == uid))


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


# The cluster name of every version before the name was derived (docs/SECURITY.md, item 3):
# groups an earlier node made without --cluster-name carry it.
LEGACY_CLUSTER = "default"
_UUID_LIKE = re.compile(r"^[0-9a-z-]{1,64}$")


def derived_cluster_name(kube_system_uid: str) -> str:
    """The cluster name of a node that was given none: ``k8s-`` and the UID of the cluster's
    ``kube-system`` namespace, which the API server made at random when the cluster was born, so
    two clusters sharing an account never get the same name by default (and an operator can
    tell which cluster a group belongs to with ``kubectl get ns kube-system``). A UID of an
    unusual form is replaced by 128 bits of its digest; either way a valid tag value (no
    ``acs:``/``aliyun`` prefix, at most 128 characters)."""
    uid = kube_system_uid.strip().lower()
    if not uid:
        raise ValueError("the kube-system namespace has no UID")
    return f"k8s-{uid if _UUID_LIKE.match(uid) else _strong_digest(uid)}"
