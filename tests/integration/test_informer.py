"""The one informer against the real API server: list, watch, resume after the server
ends a watch (no relist), and a watch expired with 410 Gone after an API-server restart: it lists
again and reports the deletions that happened in the gap."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from kubernetes_asyncio import client

from tests.fixtures.node import eventually
from vk_eci.cluster.kube.informer import Informer, pod_informer
from vk_eci.controlplane import cluster
from vk_eci.log import pods_logger


def _pod(name: str, node: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(node_name=node, containers=[
            client.V1Container(name="c", image="nginx")]))


class Seen:
    def __init__(self) -> None:
        self.changed: list[str] = []
        self.deleted: list[str] = []

    def change(self, key: str) -> None:
        self.changed.append(key)

    def delete(self, key: str, _obj: Any) -> None:
        self.deleted.append(key)


async def _true(value: bool) -> bool:
    return value


async def test_watch_expiry_relists_and_reports_the_gaps_deletions(
        control_plane: Any, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    node = f"informer-{uuid.uuid4().hex[:6]}"
    for name in ("a", "b"):
        await core.create_namespaced_pod(namespace, _pod(name, node))
    await core.create_namespaced_pod(namespace, _pod("elsewhere", node + "-other"))
    seen = Seen()
    informer = pod_informer(kube_api, node, seen.change, seen.delete)
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 20)
    assert sorted(informer.cache) == [f"{namespace}/a", f"{namespace}/b"]
    assert sorted(seen.changed) == [f"{namespace}/a", f"{namespace}/b"]

    # A watch event arrives without a relist.
    await core.create_namespaced_pod(namespace, _pod("c", node))
    await eventually(lambda: _true(f"{namespace}/c" in informer.cache), 20, "c watched")
    assert informer.relists == 1

    # The informer stops watching; meanwhile a pod goes and another comes.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await core.delete_namespaced_pod("a", namespace, grace_period_seconds=0)
    await core.create_namespaced_pod(namespace, _pod("d", node))
    # The API server restarts (etcd kept): its new watch cache starts after the version the
    # informer resumes from, so the server answers that watch with 410 Gone.
    await asyncio.to_thread(cluster.restart, control_plane.dir, "kube-apiserver")
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: _true(informer.expired == 1 and informer.relists == 2), 20,
                         "410 then relist")
        await eventually(lambda: _true(f"{namespace}/a" in seen.deleted), 20, "a reported deleted")
        assert sorted(informer.cache) == [f"{namespace}/b", f"{namespace}/c", f"{namespace}/d"]
        assert seen.changed[-1] == f"{namespace}/d"
        # The relisted informer watches again from the new listing.
        await core.delete_namespaced_pod("b", namespace, grace_period_seconds=0)
        await eventually(lambda: _true(f"{namespace}/b" in seen.deleted), 20, "b deleted")
        assert informer.relists == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_watch_ended_by_the_server_resumes_without_listing(
        kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    seen = Seen()
    informer = Informer("configmaps", core.list_namespaced_config_map, namespace,
                        logger=pods_logger, watch_seconds=1)
    informer.add_handler(seen.change, seen.delete)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 20)
        for i in range(3):
            # Each change lands after the server ended the previous watch (1 s).
            await asyncio.sleep(1.5)
            await core.create_namespaced_config_map(namespace, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"cm-{i}")))
        await eventually(lambda: _true(all(f"{namespace}/cm-{i}" in informer.cache
                                           for i in range(3))), 20, "all watched")
        await core.delete_namespaced_config_map("cm-1", namespace)
        await eventually(lambda: _true(f"{namespace}/cm-1" in seen.deleted), 20, "cm-1 gone")
        assert informer.relists == 1 and informer.expired == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
