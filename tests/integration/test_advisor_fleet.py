"""The cache advisor once per cluster (docs/ADVISOR.md "A fleet"): two nodes, each keeping its
own demand in its own ConfigMap, both given one advisor Lease. Node A leads it; demand is seen
only on node B (a Deployment there); A's advisor reads B's ConfigMap and acts on it (apply: one
ImageCache for B's image set, labelled with the Lease's name, written by A), and B's advisor
never plans.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from matcher import normalize_image
from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_image_cache_pods import (  # noqa: F401 - fixture
    Scenario,
    emulator_realtime,
)
from tests.integration.test_imagecache_advisor import (
    SET_A,
    advisor_flags,
    imagecaches,
    run_set_a,
)
from tests.integration.test_imagecache_controller import cleanup, crd  # noqa: F401 - fixture
from vk_eci.advisor.model import ADVISOR_OWNED_LABEL
from vk_eci.cluster.advising.caches import owner_value
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration


async def test_one_advisor_plans_for_the_cluster_from_every_nodes_demand(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    lease = f"advisor-{uuid.uuid4().hex[:6]}"
    owner = owner_value(lease)

    def flags(node: str) -> dict[str, str | bool]:
        return {**advisor_flags(namespace, "apply", imagecache_advisor_lease=f"{namespace}/{lease}",
                                imagecache_advisor_configmap=f"{namespace}/advisor-{node}"),
                "identity": f"{node}-{lease}"}

    a = await node_factory(**flags("a"))
    coord = client.CoordinationV1Api(kube_api)

    async def a_leads() -> Any:
        try:
            held = await coord.read_namespaced_lease(lease, namespace)
        except ApiException:
            return None
        return held.spec.holder_identity == f"a-{lease}" or None

    await eventually(a_leads, 60, "node A holding the advisor Lease", a)
    b = await node_factory(**flags("b"))
    made: list[str] = []
    try:
        await run_set_a(Scenario(emulator_realtime, b, kube_api, namespace))

        async def planned() -> Any:
            ours = [name for name, o in (await imagecaches(kube_api)).items()
                    if (o["metadata"].get("labels") or {}).get(ADVISOR_OWNED_LABEL) == owner]
            return ours or None

        made = await eventually(planned, 90, "an ImageCache from B's demand", a)
        assert len(made) == 1, made
        obj = (await imagecaches(kube_api))[made[0]]
        assert sorted(obj["spec"]["images"]) == sorted(normalize_image(i) for i in SET_A)
        managers = {m.get("manager", "") for m in obj["metadata"].get("managedFields") or []}
        assert any(m.startswith(f"vk-eci@a-{lease}") for m in managers), managers
        assert not any(m.startswith(f"vk-eci@b-{lease}") for m in managers), managers
        # Only A plans: B keeps its demand (its ConfigMap) but never plans or writes caches.
        assert "plans for the cluster" in a.logs()
        assert "plans for the cluster" not in b.logs()
        assert "advisor (apply): plan of" not in b.logs()
        assert "advisor (apply): plan of 1 caches (create 1" in a.logs()
    finally:
        await cleanup(crd, *made)
