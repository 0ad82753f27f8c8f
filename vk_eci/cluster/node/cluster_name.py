"""The name this node tags its ECI groups and caches with (docs/SECURITY.md, item 3).

Start-up reconciliation deletes every group tagged with the node's cluster and node name whose
pod is gone. With one default name for every cluster (``default``, before this), two clusters
sharing an Alibaba Cloud account and the default node name listed each other's groups and
deleted them as orphans. So a node given no ``--cluster-name`` derives one from the UID of its
cluster's ``kube-system`` namespace (:func:`naming.derived_cluster_name`), which no other
cluster has, and says which name it uses in its log. Groups an earlier version tagged
``default`` are handled by ``cloud/groups/legacy.py`` (adopted only when they are this node's
pods' groups).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cloud.api import naming
from vk_eci.config import Settings
from vk_eci.log import node_logger

NAMESPACE = "kube-system"


class ClusterNameError(Exception):
    """The cluster name cannot be derived and waiting will not help; the message says why."""


async def resolve(api: Any, settings: Settings) -> Settings:
    """``settings`` with the cluster name to use: the one given, else the derived one (and the
    old default recorded as ``legacy_cluster_name``, for adoption)."""
    if settings.cluster_name:
        node_logger.info("cluster name %r (--cluster-name)", settings.cluster_name)
        return settings
    try:
        namespace = await client.CoreV1Api(api).read_namespace(NAMESPACE)
    except ApiException as e:
        if e.status in (401, 403, 404):
            raise ClusterNameError(
                f"no --cluster-name given, and the node cannot read namespace {NAMESPACE} to "
                f"derive one ({e.status} {e.reason}): grant 'get' on namespaces/{NAMESPACE} "
                "(the chart does when node.clusterName is empty) or set --cluster-name") from e
        raise
    uid = namespace.metadata.uid if namespace.metadata is not None else None
    if not uid:
        raise ClusterNameError(f"namespace {NAMESPACE} has no UID to derive the cluster name "
                               "from: set --cluster-name")
    name = naming.derived_cluster_name(uid)
    node_logger.info("cluster name %r (derived from the UID of namespace %s; set "
                     "--cluster-name to choose one)", name, NAMESPACE)
    return replace(settings, cluster_name=name, legacy_cluster_name=naming.LEGACY_CLUSTER)
