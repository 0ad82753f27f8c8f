"""EciProvider's incremental status against the emulator over HTTP: what changed is
found with DescribeContainerGroupStatus and only those groups are fetched."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_cloud_provider import make_pod, make_provider
from vk_eci.emulator import Emulator
from vk_eci.provider import IncrementalStatus

pytestmark = pytest.mark.integration


async def test_changed_pods_polls_then_fetches_only_the_changed(emulator: Emulator) -> None:
    provider = make_provider(emulator)
    assert isinstance(provider, IncrementalStatus)
    assert await provider.changed_pods() is None   # never listed: the caller lists everything
    await provider.create_pod(make_pod("slow", image="flink:1.13"))   # ~50 s to Running
    await provider.create_pod(make_pod("quick"))
    assert provider.busy()
    before = time.time()
    await provider.get_pods()
    assert len(emulator.recorded("DescribeContainerGroups")) == 1
    seen: dict[str, list[str]] = {"default-slow": [], "default-quick": []}
    for _ in range(60):   # one poll per (emulated) second, as the node runs them
        emulator.clock.advance(1)
        changes = await provider.changed_pods()
        assert changes is not None
        for change in changes:
            assert change.not_before is not None and change.not_before >= before
            seen[f"default-{change.pod.metadata.name}"].append(change.pod.status.phase)
    # Scheduling and Pending (ECI) are both Pending (pod); Running comes once, not per poll.
    for seq in seen.values():
        assert list(dict.fromkeys(seq)) == ["Pending", "Running"] and seq.count("Running") == 1
    polls = emulator.recorded("DescribeContainerGroupStatus")
    assert len(polls) == 60 and all(p["SinceSecond"] == "2" for p in polls)
    assert all(p.get("Tag.1.Key") for p in polls)
    # Each changed group was fetched by id, and only those: never a full listing.
    fetched = emulator.recorded("DescribeContainerGroups")[1:]
    assert fetched and all("ContainerGroupIds" in f for f in fetched)
    assert not provider.busy()   # both Running: nothing is moving


async def test_deleted_group_is_asked_for_by_id_until_gone(emulator: Emulator) -> None:
    provider = make_provider(emulator)
    pod = make_pod("bye")
    await provider.create_pod(pod)
    emulator.clock.advance(10)
    await provider.get_pods()
    await provider.delete_pod(pod)   # 30 s of grace: Terminating for 30 s
    assert provider.busy()
    for _ in range(29):
        emulator.clock.advance(1)
        await provider.changed_pods()
        assert (await provider.get_pod_status("default", "bye")) is not None
    by_id = [p for p in emulator.recorded("DescribeContainerGroupStatus")
             if "ContainerGroupIds" in p]
    assert len(by_id) == 29
    emulator.clock.advance(2)
    await provider.changed_pods()
    assert await provider.get_pod_status("default", "bye") is None
    assert not provider.busy()
    await provider.delete_pod(pod)   # nothing left to delete: no second DeleteContainerGroup
    assert len(emulator.recorded("DeleteContainerGroup")) == 1
