"""The informer's store keeps no ``managedFields`` (nothing in the node reads them; they were
the largest single item of what a pod costs the node at rest)."""

from __future__ import annotations

import logging
from typing import Any

from vk_eci.cluster.kube.decode import decode
from vk_eci.cluster.kube.informer import Informer

MANAGED = [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]


def pod(name: str, rv: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}",
                         "resourceVersion": rv, "managedFields": MANAGED},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def _lister(*_: Any, **__: Any) -> Any:
    raise AssertionError("not listed in this test")


def test_stored_pods_have_no_managed_fields() -> None:
    informer = Informer("pods", _lister, logger=logging.getLogger("test"))
    informer.apply("ADDED", decode(pod("a", "1"), "V1Pod"))
    informer.apply("ADDED", pod("b", "1"))  # a plain dict, as some listers answer
    informer.remember(decode(pod("c", "2"), "V1Pod"))
    a, b, c = (informer.cache[f"ns/{n}"] for n in "abc")
    assert a.metadata.managed_fields is None and a.spec.containers[0].image == "busybox"
    assert "managedFields" not in b["metadata"] and b["metadata"]["uid"] == "u-b"
    assert c.metadata.managed_fields is None and c.metadata.resource_version == "2"
