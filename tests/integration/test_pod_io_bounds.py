"""EciPodIO's memory of group ids stays bounded: lookups of many pods (real or made up) through
the official SDK against the emulator cannot grow it without end."""

from __future__ import annotations

import uuid

import pytest
from alibabacloud_eci20180808 import models as m

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.errors import NotFound
from vk_eci.cloud.pod_io import EciPodIO
from vk_eci.emulator import Emulator
from vk_eci.provider import LogOptions

pytestmark = pytest.mark.integration
CLUSTER, NODE, NS = "bounds", "vk-bounds", "team"


async def test_remembered_group_ids_are_evicted_by_age_and_count(
        emulator_realtime: Emulator) -> None:
    eci = EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                    endpoint=emulator_realtime.endpoint, protocol="http",
                                    default_rate_limit=None))
    for i in range(6):
        await eci.create_container_group(m.CreateContainerGroupRequest(
            region_id="cn-hangzhou", container_group_name=naming.group_name(NS, f"p{i}"),
            security_group_id="sg-1", v_switch_id="vsw-1",
            tag=[m.CreateContainerGroupRequestTag(key=k, value=v) for k, v in
                 naming.pod_tags(CLUSTER, NODE, NS, f"p{i}", str(uuid.uuid4())).items()],
            container=[m.CreateContainerGroupRequestContainer(
                name="main", image="busybox:1.36", cpu=1.0, memory=2.0)]))
    now = [0.0]
    pod_io = EciPodIO(eci, cluster_name=CLUSTER, node_name=NODE, group_ttl=30.0, max_ids=4,
                      clock=lambda: now[0])
    for i in range(6):
        assert await pod_io.container_state(NS, f"p{i}", "main") is not None
        assert len(pod_io._ids) <= 4
    assert set(pod_io._ids) == {(NS, f"p{i}") for i in range(2, 6)}  # the newest four
    # Made-up pods are not remembered at all.
    for i in range(20):
        with pytest.raises(NotFound):
            await pod_io.container_logs(NS, f"ghost{i}", "main", LogOptions())
    assert len(pod_io._ids) == 4
    # Once expired, the next lookup drops every stale entry, not only its own.
    now[0] = 31.0
    assert await pod_io.container_state(NS, "p0", "main") is not None
    assert set(pod_io._ids) == {(NS, "p0")}
