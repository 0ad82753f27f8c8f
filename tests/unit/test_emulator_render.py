"""The memoised group JSON always equals a fresh render, at every moment of a group's life."""

from __future__ import annotations

import json

import pytest

from vk_eci.emulator import actions_create
from vk_eci.emulator.clock import ManualClock
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.faults import Faults
from vk_eci.emulator.params import unflatten
from vk_eci.emulator.render import render_group, render_group_json
from vk_eci.emulator.state import State
from vk_eci.emulator.timing import Timing

BASE = {"RegionId": "cn-hangzhou", "ContainerGroupName": "g1", "SecurityGroupId": "sg-1",
        "VSwitchId": "vsw-1", "TerminationGracePeriodSeconds": "45"}


@pytest.mark.parametrize("delete_at", [None, 5.0, 60.0, 200.0])
@pytest.mark.parametrize("events", [True, False])
@pytest.mark.parametrize("extra", [
    {"Container.1.Name": "a", "Container.1.Image": "flink:1.13"},
    {"Container.1.Name": "a", "Container.1.Image": "busybox", "RestartPolicy": "Always",
     "Container.1.Command.1": "sh", "Container.1.Command.2": "-c",
     "Container.1.Command.3": "echo x; sleep 3; exit 1"},
    {"Container.1.Name": "a", "Container.1.Image": "busybox", "RestartPolicy": "Never",
     "Container.1.Command.1": "sleep", "Container.1.Command.2": "7",
     "InitContainer.1.Name": "i", "InitContainer.1.Image": "alpine",
     "InitContainer.1.Command.1": "sleep", "InitContainer.1.Command.2": "4"},
    {"Container.1.Name": "a", "Container.1.Image": "registry.cn-hangzhou.aliyuncs.com/p/x:1"},
])
def test_memo_matches_fresh_render(extra: dict[str, str], events: bool,
                                   delete_at: float | None) -> None:
    clock = ManualClock()
    state = State("cn-hangzhou", clock, Timing())
    state.registries.add_private("registry.cn-hangzhou.aliyuncs.com", "u", "p")
    flat = {**BASE, **extra}
    gid = actions_create.create_container_group(Ctx(state, Faults(), unflatten(flat), flat, ""))[
        "ContainerGroupId"]
    group = state.groups[gid]
    reused = 0
    seen: set[str] = set()
    for step in [0.3] * 40 + [7.0] * 60 + [97.0] * 30:
        clock.advance(step)
        now = clock.now()
        if delete_at is not None and now - group.created >= delete_at:
            state.stop_group(group)   # repeated on later steps: accepted, changes nothing
            state.reap()
            if gid not in state.groups:
                break
        memo = json.loads(render_group_json(group, state.timing, now, with_events=events))
        assert group.json_cache is not None
        reused += group.json_cache[0] != now
        fresh = render_group(group, state.timing, now, with_events=events)
        assert memo == fresh, now - group.created
        seen.add(fresh["Status"])
    assert reused > 0  # the memo was really exercised
    if delete_at is not None:
        assert gid not in state.groups  # every life here ends within the grace period
        assert group.deleted_at is not None and group.gone_at is not None
        assert group.gone_at - group.deleted_at <= 45.0
        # Terminating was shown whenever the group outlived the delete by a render step.
        if group.gone_at - group.deleted_at >= 7.0:
            assert "Terminating" in seen
