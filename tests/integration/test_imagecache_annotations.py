"""An ImageCache object's annotations ("Image cache annotations" of Alibaba's ECI guide) reach
CreateImageCache, or refuse the object by name: real control plane, the ImageCache controller,
the ECI emulator through the official SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration import test_imagecache_controller as ic
from tests.unit.test_cloud_cache_choice import pod
from vk_eci.cloud.caches.annotations import EXPLICIT_KEY
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.cloud.caches.decision import CacheChoiceSettings, CacheDecision
from vk_eci.cluster.imagecaches.controller import ImageCacheController

pytestmark = pytest.mark.integration
K = "k8s.aliyun.com/"


@pytest.fixture
async def crd(control_plane: Any) -> Any:
    await ic.kubectl(control_plane, "apply", "-f", str(ic.CRD))
    await ic.kubectl(control_plane, "wait", "--for=condition=Established", "--timeout=30s",
                     "crd/imagecaches.eci.alibabacloud.com")
    return control_plane


def body(name: str, annotations: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": name, "annotations": annotations},
                       "spec": {"images": ["busybox:1.36"]}})


async def test_annotations_are_sent_or_refused_by_name(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:
    cp, emu = crd, emulator_realtime
    controller = ImageCacheController(kube_api, ic.eci_client(emu), identity="node-a",
                                      settings=ic.settings())
    sent = {K + "vswitch-ids": "vsw-ic1,vsw-ic2", K + "security-group-id": "sg-ic",
            K + "resource-group-id": "rg-ic", K + "acr-instance-ids": "cn-beijing:cri-ic1",
            K + "acr-service-arns": "acs:ram::123456789012:role/eci",
            K + "acr-user-arns": "acs:ram::210987654321:role/acr",
            K + "plain-http-registry": "harbor.local:80", K + "insecure-registry": "reg.local",
            K + "imc-enable-flash": "true", K + "imc-enable-reuse": "true",
            K + "imc-cpu-arch": "amd64", K + "imc-os-type": "linux"}
    try:
        async with ic.running(controller):
            await ic.kubectl(cp, "create", "-f", "-", input=body("annotated", sent))
            await ic.kubectl(cp, "create", "-f", "-", input=body(
                "arm-cache", {K + "imc-cpu-arch": "arm64"}))
            await ic.eventually(lambda: ic.phase_is(cp, "annotated", "Ready"), 60, "Ready")
            (create,) = emu.recorded("CreateImageCache")
            expected = {"VSwitchId": "vsw-ic1,vsw-ic2", "SecurityGroupId": "sg-ic",
                        "ResourceGroupId": "rg-ic", "AcrRegistryInfo.1.InstanceId": "cri-ic1",
                        "AcrRegistryInfo.1.RegionId": "cn-beijing",
                        "AcrRegistryInfo.1.ArnService": "acs:ram::123456789012:role/eci",
                        "AcrRegistryInfo.1.ArnUser": "acs:ram::210987654321:role/acr",
                        "PlainHttpRegistry": "harbor.local:80", "InsecureRegistry": "reg.local",
                        "Flash": "true", "AutoMatchImageCache": "true"}
            for key, value in expected.items():
                assert create.get(key, "").lower() == value.lower(), (key, create.get(key))
            assert "ZoneId" not in create   # the node's zone belongs to the node's vSwitch

            async def refused() -> Any:
                obj = await ic.get_ic(cp, "arm-cache")
                return obj if (obj or {}).get("status", {}).get("reason") == "InvalidSpec" \
                    else None

            obj = await ic.eventually(refused, 30, "arm-cache refused as InvalidSpec")
            assert K + "imc-cpu-arch" in obj["status"]["message"]
            assert len(emu.recorded("CreateImageCache")) == 1   # never sent
    finally:
        await ic.cleanup(cp, "annotated", "arm-cache")


async def test_refresh_and_purge_annotations(crd: Any, kube_api: Any,
                                             emulator_realtime: Any) -> None:
    cp, emu = crd, emulator_realtime
    controller = ImageCacheController(kube_api, ic.eci_client(emu), identity="node-a",
                                      settings=ic.settings())
    try:
        async with ic.running(controller):
            await ic.kubectl(cp, "create", "-f", "-", input=body("mutable", {}))
            ready = await ic.eventually(lambda: ic.phase_is(cp, "mutable", "Ready"), 60, "Ready")
            cache_id = ready["status"]["imageCacheId"]
            assert emu.recorded("UpdateImageCache") == []
            await ic.kubectl(cp, "annotate", "imagecache", "mutable",
                             "vk-eci.io/refresh-imagecache=now")

            async def refreshed() -> Any:
                obj = await ic.get_ic(cp, "mutable")
                done = obj and obj["status"].get("lastRefreshTime") and \
                    "vk-eci.io/refresh-imagecache" not in (obj["metadata"].get("annotations")
                                                          or {})
                return obj if done else None

            await ic.eventually(refreshed, 30, "a refresh, its annotation removed")
            (update,) = emu.recorded("UpdateImageCache")
            assert update["ImageCacheId"] == cache_id and update["Image.1"] == "busybox:1.36"
            events = {e["reason"] for e in await ic.object_events(cp, "mutable")}
            assert "Refreshing" in events
            await ic.eventually(lambda: ic.phase_is(cp, "mutable", "Ready"), 60, "Ready again")
            # A bad period is named; nothing more is sent.
            await ic.kubectl(cp, "annotate", "imagecache", "mutable",
                             "vk-eci.io/refresh-period=5s")

            async def invalid() -> Any:
                obj = await ic.get_ic(cp, "mutable")
                return obj if obj["status"].get("reason") == "InvalidSpec" else None

            obj = await ic.eventually(invalid, 30, "InvalidSpec for the period")
            assert "vk-eci.io/refresh-period" in obj["status"]["message"]
            await ic.kubectl(cp, "annotate", "imagecache", "mutable", "vk-eci.io/refresh-period-")
            # Purge: the ECI cache goes, the object stays Purged until the annotation goes.
            await ic.kubectl(cp, "annotate", "imagecache", "mutable",
                             "vk-eci.io/purge-imagecache=yes")
            purged = await ic.eventually(lambda: ic.phase_is(cp, "mutable", "Purged"), 30,
                                         "Purged")
            assert "imageCacheId" not in purged["status"]
            assert [d["ImageCacheId"] for d in emu.recorded("DeleteImageCache")] == [cache_id]
            assert len(emu.recorded("CreateImageCache")) == 1
            await ic.kubectl(cp, "annotate", "imagecache", "mutable",
                             "vk-eci.io/purge-imagecache-")
            rebuilt = await ic.eventually(lambda: ic.phase_is(cp, "mutable", "Ready"), 60,
                                          "rebuilt")
            assert rebuilt["status"]["imageCacheId"] != cache_id
            assert len(emu.recorded("CreateImageCache")) == 2
    finally:
        await ic.cleanup(cp, "mutable")


async def test_the_objects_refresh_period_reaches_the_nodes_pull_policy(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:
    # The node's period is 1 s (every cache is old); the object's own 10m wins while it is
    # set: a pod starting from its young cache has Always rewritten. Removed, the node's
    # period applies again and the pod keeps Always (docs/IMAGE_CACHES.md).
    cp, emu = crd, emulator_realtime
    catalog = CacheCatalog(ic.eci_client(emu))
    controller = ImageCacheController(kube_api, ic.eci_client(emu), identity="node-a",
                                      settings=ic.settings(), observer=catalog)
    node = CacheChoiceSettings(refresh_period=1.0)

    async def decide(cache_id: str) -> CacheDecision:
        return await decide_for_pod(pod({EXPLICIT_KEY: cache_id}, ["busybox:1.36"], "Always"),
                                    catalog, settings=node, now=time.time() + 5)
    try:
        async with ic.running(controller):
            await ic.kubectl(cp, "create", "-f", "-", input=body(
                "periodic", {"vk-eci.io/refresh-period": "10m"}))
            ready = await ic.eventually(lambda: ic.phase_is(cp, "periodic", "Ready"), 60,
                                        "Ready")
            cache_id = ready["status"]["imageCacheId"]
            await catalog.sync()

            async def period_is(seconds: float) -> bool:
                return catalog.refresh_of(cache_id, node.refresh_period)[0] == seconds
            await ic.eventually(lambda: period_is(600.0), 30, "the object's period seen")
            young = await decide(cache_id)
            assert young.image_snapshot_id == cache_id
            assert young.pull_policy_overrides == {"c0": "IfNotPresent"}

            await ic.kubectl(cp, "annotate", "imagecache", "periodic",
                             "vk-eci.io/refresh-period-")
            await ic.eventually(lambda: period_is(1.0), 30, "the node's period again")
            old = await decide(cache_id)
            assert old.pull_policy_overrides == {}
            assert "ImagePullPolicyKept" in [e.reason for e in old.events]
    finally:
        await ic.cleanup(cp, "periodic")
