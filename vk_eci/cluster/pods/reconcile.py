"""Start-up reconciliation of both sides, before the pod queue starts working.

The provider lists the groups tagged for this node and cluster; any of them whose pod is gone
(or was replaced by a pod with another UID) is an orphan and is deleted. Pods without a group
are left to the queue, which creates them, except pods that were already Running: their
containers are lost, so they are marked Failed rather than silently restarted.
Groups of other nodes or clusters are never touched: the provider's listing is filtered by our
tags, and anything that still names another node is skipped here as a second guard. When the
cluster name was derived (no --cluster-name), groups an earlier version tagged with the old
default name are first adopted if, and only if, their pod UID is one of this node's pods
(``cloud/groups/legacy.py``); the others are left alone, never deleted as orphans.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from vk_eci.cluster.pods.controller import TERMINAL, PodController
from vk_eci.log import pods_logger

LOST = "ProviderPodNotFound"


@dataclass
class Report:
    orphans_deleted: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    to_create: list[str] = field(default_factory=list)
    marked_failed: list[str] = field(default_factory=list)


def _key(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


async def reconcile(pods: PodController) -> Report:
    """Bring ECI and the API server into agreement; then let the queue work."""
    await pods.informer.synced.wait()
    report = Report()
    node = pods.settings.node_name
    cache = pods.informer.cache
    legacy: Collection[str] = ()
    if pods.adopt_legacy is not None:
        pods.fence.check("re-tagging container groups of the old default cluster name")
        legacy = await pods.adopt_legacy({p.metadata.uid: (p.metadata.namespace, p.metadata.name)
                                          for p in cache.values() if p.metadata.uid})
    cloud = await pods.provider.get_pods()
    # A group's name tag is cut past 128 characters: its UID tag finds such a pod.
    by_uid = {p.metadata.uid: p for p in cache.values() if p.metadata.uid}
    for group in cloud:
        spec_node = getattr(group.spec, "node_name", None) if group.spec else None
        if spec_node and spec_node != node:
            continue
        key = _key(group)
        pod = cache.get(key) or by_uid.get(group.metadata.uid)
        if pod is None or (group.metadata.uid and group.metadata.uid != pod.metadata.uid):
            pods_logger.info("deleting orphan container group of %s", key, extra={"pod": key})
            pods.fence.check(f"a delete of the orphan container group of {key}")
            await pods.provider.delete_pod(group)
            report.orphans_deleted.append(key)
            continue
        pods.adopt(pod)
        report.adopted.append(key)
    for key, pod in list(cache.items()):
        t = pods.track(pod)
        if not t.created and pod.metadata.uid in legacy:
            # Its group was just re-tagged; a listing may not show it yet. Never a new one.
            pods.adopt(pod)
            report.adopted.append(key)
            continue
        phase = pod.status.phase if pod.status else None
        if t.created or pod.metadata.deletion_timestamp is not None or phase in TERMINAL:
            continue
        if phase == "Running":
            message = "its ECI container group was not found when the node started"
            pods_logger.warning("pod %s was Running without a container group; marking it "
                                "Failed", key, extra={"pod": key})
            await pods.recorder.record(pod, "Warning", LOST, message)
            await pods.patch_status(pod, {"phase": "Failed", "reason": LOST,
                                          "message": message})
            report.marked_failed.append(key)
            continue
        report.to_create.append(key)
    pods_logger.info("start-up reconciliation: %d orphan group(s) deleted, %d adopted, "
                     "%d to create, %d marked Failed", len(report.orphans_deleted),
                     len(report.adopted), len(report.to_create), len(report.marked_failed))
    pods.start_work()
    return report
