"""cloud/api/lean.py: SDK models rebuilt lean read the same and hold less."""

from __future__ import annotations

import gc
import json
import tracemalloc
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.lean import lean

BODY = {
    "RequestId": "r-1", "TotalCount": 1, "NextToken": "",
    "ContainerGroups": [{
        "ContainerGroupId": "eci-0001", "ContainerGroupName": "web-0001", "Status": "Running",
        "IntranetIp": "192.168.0.7", "InternetIp": "", "Cpu": 0.25, "Memory": 0.5,
        "SpotPriceLimit": 0.0, "RestartPolicy": "Always", "HostAliases": [],
        "Tags": [{"Key": "vk-eci.io/node", "Value": "vk"},
                 {"Key": "k8s.aliyun.com/pod-uid", "Value": "uid-0001"}],
        "Containers": [{"Name": "main", "Image": "busybox:1.36", "Ready": True,
                        "RestartCount": 0, "Ports": [], "Commands": ["sleep", "infinity"],
                        "CurrentState": {"State": "Running",
                                         "StartTime": "2024-01-01T00:00:03Z"},
                        "PreviousState": {}}],
        "Events": [{"Count": 1, "Type": "Normal", "Reason": "Pulled", "Name": "eci-0001",
                    "Message": "Successfully pulled image \"busybox:1.36\" in 1.2s",
                    "FirstTimestamp": "2024-01-01T00:00:02Z",
                    "LastTimestamp": "2024-01-01T00:00:02Z"}],
    }],
}


def body(data: dict[str, Any] = BODY) -> Any:
    # A fresh parse per body, as the SDK does per answer (so no string is shared by chance).
    return eci.DescribeContainerGroupsResponseBody().from_map(json.loads(json.dumps(data)))


def test_a_lean_group_reads_and_maps_as_the_sdk_model() -> None:
    sdk = body()
    group = lean(sdk.container_groups[0])
    assert isinstance(group, eci.DescribeContainerGroupsResponseBodyContainerGroups)
    full = sdk.container_groups[0].to_map()
    # Empty lists and models are left out, as if ECI had not sent them: the SDK maps a list
    # left out as an empty one, a model left out not at all; the rest maps as is.
    del full["Containers"][0]["PreviousState"]
    assert group.to_map() == full
    assert group.status == "Running" and group.internet_ip == "" and group.host_aliases is None
    assert group.containers[0].ports is None and group.containers[0].previous_state is None
    assert group.containers[0].commands == ["sleep", "infinity"]
    assert group.containers[0].restart_count == 0  # a zero is a value, not an empty
    assert group.ram_role_name is None           # absent in the answer: None, as the SDK's
    assert group.containers[0].current_state.state == "Running"
    assert isinstance(group.containers[0],
                      eci.DescribeContainerGroupsResponseBodyContainerGroupsContainers)
    assert [t.key for t in group.tags] == ["vk-eci.io/node", "k8s.aliyun.com/pod-uid"]
    assert group.events[0].reason == "Pulled"
    assert type(lean(group)) is type(group)      # rebuilt again: the same lean class
    group.status = "Succeeded"                   # fields stay assignable per instance
    assert group.status == "Succeeded" and lean(sdk.container_groups[0]).status == "Running"


def test_lean_groups_share_recurring_strings_and_hold_less() -> None:
    def held(make: Any) -> int:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(200)]
        gc.collect()
        size = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert len(kept) == 200
        return size

    sdk = held(lambda: body().container_groups[0])
    slim = held(lambda: lean(body().container_groups[0]))
    assert slim < 0.75 * sdk, f"lean {slim} B against the SDK's {sdk} B for 200 groups"
    a, b = lean(body().container_groups[0]), lean(body().container_groups[0])
    assert a.containers[0].image is b.containers[0].image
    assert a.events[0].message is b.events[0].message


def test_omitted_fields_are_left_out_at_any_depth() -> None:
    data = json.loads(json.dumps(BODY))
    group_map = data["ContainerGroups"][0]
    group_map["Volumes"] = [{"Name": "token", "Type": "ConfigFileVolume",
                             "ConfigFileVolumeConfigFileToPaths": [
                                 {"Path": "token", "Content": "eyJhbGciOi.secret"}]}]
    group_map["Containers"][0]["EnvironmentVars"] = [{"Key": "A", "Value": "1"}]
    group = lean(body(data).container_groups[0], omit={"volumes", "environment_vars"})
    assert group.volumes is None and group.containers[0].environment_vars is None
    assert "eyJhbGciOi.secret" not in json.dumps(group.to_map())
    assert group.containers[0].image == "busybox:1.36" and group.events[0].reason == "Pulled"
