"""``vk-eci match`` asking ECI itself (the node's settings and credential chain), here the
emulator through the official SDK: of two caches holding the image, the 20 GiB one ranks first."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_match_asks_eci_with_the_node_settings(emulator: Emulator) -> None:
    client = EciClient(EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                       endpoint=emulator.endpoint, protocol="http"))
    ids = {}
    for name, images, size in (("imagecache-sample", ["nginx:1.7.9", "busybox"], 25),
                               ("imagecache-small", ["nginx:1.7.9"], 20)):
        ids[name] = await client.create_image_cache(eci.CreateImageCacheRequest(
            region_id="cn-hangzhou", image_cache_name=name, image=images,
            image_cache_size=size, security_group_id="sg-1", v_switch_id="vsw-1"))
    emulator.clock.advance(3600)  # both built and Ready
    env = {**os.environ, "VK_ECI_REGION": "cn-hangzhou", "VK_ECI_ECI_ENDPOINT": emulator.endpoint,
           "VK_ECI_ECI_PROTOCOL": "http", "ALIBABA_CLOUD_ACCESS_KEY_ID": "AK",
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "SK"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "match", "-f",
        str(ROOT / "examples" / "image-cache" / "deployment.yaml"), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[1].startswith(f"  1. {ids['imagecache-small']} (imagecache-small): 1/1 images")
    assert lines[3].startswith(f"  2. {ids['imagecache-sample']} (imagecache-sample)")
    assert "smaller (20 vs 25 GiB)" in lines[2]
    assert lines[-1] == f"  => hit: ImageSnapshotId={ids['imagecache-small']} (1/1)"
    assert "SK" not in out.decode() + err.decode()
    assert emulator.recorded("DescribeImageCaches")  # it did ask ECI
