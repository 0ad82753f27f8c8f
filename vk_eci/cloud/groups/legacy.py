"""Groups an earlier version made under the old default cluster name (docs/SECURITY.md, item 3).

Before the cluster name was derived from the ``kube-system`` namespace, a node given no
``--cluster-name`` tagged its groups ``vk-eci.io/cluster=default``, as did every other such
node in the account, whatever its cluster. After an upgrade, the node's listing (by its new
cluster name) no longer sees them. This module decides, once at start-up, which of them are
this node's: a group tagged ``default`` + this node's name is adopted (re-tagged with the new
cluster name through ``TagResources``) only when its pod-UID tag is the UID of a pod this node
runs and its namespace/name tags name that very pod. UIDs are random per pod and cluster, so a
group of another cluster that happens to share the old name and the node name is never
adopted; it is left alone (never deleted) and named in a warning, and its own cluster's node
adopts it when that one is upgraded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient
from vk_eci.cloud.groups.view import tags as group_tags
from vk_eci.log import cloud_logger

# Group ids named in the warning at most (the count is always given).
_SHOWN = 10


@dataclass
class LegacyAdoption:
    adopted: dict[str, str] = field(default_factory=dict)  # group id -> its pod's UID
    left_alone: list[str] = field(default_factory=list)  # group ids, not this node's pods


async def adopt_legacy_groups(client: EciClient, *, legacy_cluster: str, cluster: str,
                              node: str, pods: Mapping[str, tuple[str, str]],
                              ) -> LegacyAdoption:
    """Adopt the groups tagged ``legacy_cluster`` + ``node`` whose tags name one of ``pods``
    (pod UID -> (namespace, name), the pods this node runs); leave every other one alone."""
    out = LegacyAdoption()
    if legacy_cluster == cluster:
        return out
    node_tags = naming.node_tags(legacy_cluster, node)
    for group in await client.describe_container_groups(tags=node_tags):
        tags = group_tags(group)
        uid = tags.get(naming.TAG_POD_UID)
        pod = pods.get(uid) if uid else None
        # The listing filtered by these tags; checked again, as every group found is.
        ours = pod is not None and node_tags.items() <= tags.items() and naming.belongs_to(
            tags, pod[0], pod[1], uid)
        if ours and uid is not None:
            out.adopted[group.container_group_id] = uid
        else:
            out.left_alone.append(group.container_group_id)
    if out.adopted:
        await client.tag_container_groups(list(out.adopted), naming.cluster_tags(cluster))
        cloud_logger.info("adopted %d container group(s) of this node's pods tagged with the "
                          "old default cluster name %r: now tagged %r", len(out.adopted),
                          legacy_cluster, cluster)
    if out.left_alone:
        shown = ", ".join(out.left_alone[:_SHOWN])
        more = f" and {len(out.left_alone) - _SHOWN} more" if len(out.left_alone) > _SHOWN else ""
        cloud_logger.warning(
            "%d container group(s) tagged cluster %r and node %r belong to no pod of this node "
            "(%s%s): left alone, never deleted. They are another cluster's that shares the old "
            "default name, or orphans of this cluster made before the upgrade; delete orphans "
            "by hand, or run with --cluster-name=%s if this is the only cluster using the "
            "account with this node name", len(out.left_alone), legacy_cluster, node, shown,
            more, legacy_cluster)
    return out
