"""The emulator's UpdateContainerGroup of volumes, through the official SDK: a ConfigFile
volume's new content is the group's, the instance restarts, what ECI cannot update is refused."""

from __future__ import annotations

import base64

import pytest
from alibabacloud_eci20180808 import models as m

from tests.integration.test_cloud_client import group_req, make_client
from vk_eci.cloud.api.errors import InvalidInput, Permanent
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config_volume(cls: type, name: str, text: str) -> object:
    # The create's and the update's models have the same field names.
    module = m.__dict__
    prefix = cls.__name__
    return cls(name=name, type="ConfigFileVolume", config_file_volume=module[
        f"{prefix}ConfigFileVolume"](config_file_to_path=[module[
            f"{prefix}ConfigFileVolumeConfigFileToPath"](path="a.txt", content=b64(text))]))


async def test_a_config_file_update_restarts_the_instance_with_the_new_content(
        emulator: Emulator) -> None:
    client = make_client(emulator)
    req = group_req("files")
    req.volume = [config_volume(m.CreateContainerGroupRequestVolume, "conf", "one"),
                  m.CreateContainerGroupRequestVolume(name="scratch", type="EmptyDirVolume")]
    req.container[0].volume_mount = [m.CreateContainerGroupRequestContainerVolumeMount(
        name="conf", mount_path="/etc/conf")]
    gid = await client.create_container_group(req)
    emulator.clock.advance(120)

    def update(text: str, kind: str = "IncrementalUpdate") -> m.UpdateContainerGroupRequest:
        return m.UpdateContainerGroupRequest(container_group_id=gid, update_type=kind, volume=[
            config_volume(m.UpdateContainerGroupRequestVolume, "conf", text)])

    await client.update_container_group(update("two"))
    [group] = await client.describe_container_groups(ids=[gid])
    assert group.status == "Updating"
    [conf] = [v for v in group.volumes if v.name == "conf"]
    assert [base64.b64decode(p.content) for p in conf.config_file_volume_config_file_to_paths
            ] == [b"two"]
    emulator.clock.advance(120)
    [group] = await client.describe_container_groups(ids=[gid])
    assert group.status == "Running" and group.containers[0].restart_count == 1
    with pytest.raises(Permanent, match="NoNeedUpdate"):
        await client.update_container_group(update("two"))
    # A RenewUpdate that gives volumes names them all; a volume the group lacks is refused.
    with pytest.raises(InvalidInput, match="every volume"):
        await client.update_container_group(update("three", "RenewUpdate"))
    gone = m.UpdateContainerGroupRequest(container_group_id=gid, volume=[
        config_volume(m.UpdateContainerGroupRequestVolume, "nope", "x")],
        update_type="IncrementalUpdate")
    with pytest.raises(InvalidInput, match="no volume named"):
        await client.update_container_group(gone)
    [group] = await client.describe_container_groups(ids=[gid])
    assert group.containers[0].restart_count == 1
