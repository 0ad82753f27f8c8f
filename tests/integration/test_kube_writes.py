"""Writes whose answers the node does not read (events, pod status): their effect on a real API
server, the 409 path of a repeated event, and errors still raised."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.kube.api import api_client
from vk_eci.cluster.kube.decode import unanswered
from vk_eci.cluster.kube.events import KubeEventRecorder

pytestmark = pytest.mark.integration


async def test_events_counted_up_across_recorders_and_errors_raised(
        control_plane: object, namespace: str) -> None:
    api = await api_client(control_plane.kubeconfig)  # type: ignore[attr-defined]
    async with api:
        core = client.CoreV1Api(api)
        pod = {"metadata": {"namespace": namespace, "name": "p", "uid": "u-1"}}
        await KubeEventRecorder(api, "n").record(pod, "Normal", "Pulled", "pulled x")
        # A second recorder (a restarted node) meets 409, reads the event back, counts up.
        await KubeEventRecorder(api, "n").record(pod, "Normal", "Pulled", "pulled x")
        copier = KubeEventRecorder(api, "n")
        assert await copier.record_copy(pod, "Normal", "Started", "started", key="k", count=1)
        assert await KubeEventRecorder(api, "n").record_copy(
            pod, "Normal", "Started", "started", key="k", count=3)
        events = (await core.list_namespaced_event(namespace)).items
        counts = {e.reason: e.count for e in events}
        assert counts == {"Pulled": 2, "Started": 3}
        with pytest.raises(ApiException) as err:
            await unanswered(core.patch_namespaced_pod_status, "absent", namespace,
                             {"status": {"phase": "Running"}})
        assert err.value.status == 404
        assert "not found" in str(err.value.body)
