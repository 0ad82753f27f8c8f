"""An ECI event recorded after its group's last status change reaches the pod within seconds,
not at the next full listing: the node reads recently changed groups again a short while after
(``cloud/provider_listing.py``, ``FOLLOW_AFTER``)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_node_pods import _phase_is, live_groups, pod_body, tag
from vk_eci.cloud.api import naming

pytestmark = pytest.mark.integration


async def test_event_after_last_status_change_copied_before_a_full_listing(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    # No full listing during the test: only the polls (and their follow-ups) can copy it.
    node = await node_factory(status_resync_interval="600")
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body("late", node.name, ["sleep", "3600"]))
    await eventually(lambda: _phase_is(core, namespace, "late", "Running"), 60, "Running", node)
    group = next(g for g in live_groups(emulator_realtime)
                 if tag(g, naming.TAG_POD_NAME) == "late")
    # ECI records an event on a group whose status does not change (as its custom events do).
    group.event("Warning", "LateNotice", "an event after the last status change",
                emulator_realtime.state.now())
    group.json_cache = None   # the emulator's memo of the group's answer, now stale
    group.change_memo = None

    async def copied() -> bool:
        items = (await core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=late")).items
        return any(e.reason == "LateNotice" for e in items)

    await eventually(copied, 30, "the late ECI event copied", node)
