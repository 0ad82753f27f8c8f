"""The one informer (issue 19) against the real API server: list, watch, and resume after the
server ends a watch, without listing again."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio import client

from tests.fixtures.node import eventually
from vk_eci.cluster.informer import Informer
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
