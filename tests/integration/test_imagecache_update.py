"""Changing an existing ImageCache's ``imageCacheSize`` or ``retentionDays``, against the real
control plane's kubectl, the ImageCache controller and the ECI emulator (through the official SDK).

ECI's ``UpdateImageCache`` takes both: a larger size and any retention are applied in place; a
smaller size or a removed retention cannot be, and the object says so (Warning event and the
``SpecApplied`` condition) instead of ignoring the change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.integration.test_imagecache_controller import (
    _recorded,
    cleanup,
    crd,  # noqa: F401 - the fixture
    eci_client,
    eventually,
    get_ic,
    kubectl,
    object_events,
    phase_is,
    running,
    settings,
)
from vk_eci.cluster.imagecaches.controller import ImageCacheController
from vk_eci.cluster.imagecaches.status import parse_time

pytestmark = pytest.mark.integration
TIME_SCALE = 0.01  # emulator_realtime: an emulated day lasts 864 s


def body(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": name},
                       "spec": {"images": ["busybox:latest"], **spec}})


async def patch_spec(cp: Any, name: str, **spec: Any) -> None:
    await kubectl(cp, "patch", "imagecache", name, "--type=merge", "-p",
                  json.dumps({"spec": spec}))


def retention_days(status: dict[str, Any]) -> float | None:
    start, expiry = parse_time(status.get("startTime")), parse_time(status.get("expireDateTime"))
    if start is None or expiry is None:
        return None
    return (expiry - start).total_seconds() / (86400 * TIME_SCALE)


def spec_applied(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "SpecApplied"), None)


async def test_retention_and_a_larger_size_are_updated_in_place(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:  # noqa: F811
    cp, emu = crd, emulator_realtime
    client = eci_client(emu)
    controller = ImageCacheController(kube_api, client, identity="node-a", settings=settings())
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-",
                          input=body("ic-retention", retentionDays=7, imageCacheSize=20))
            ready = await eventually(lambda: phase_is(cp, "ic-retention", "Ready"), 60, "Ready")
            cache_id = ready["status"]["imageCacheId"]
            assert retention_days(ready["status"]) == pytest.approx(7, abs=0.01)

            await patch_spec(cp, "ic-retention", retentionDays=30, imageCacheSize=40)
            (update,) = await eventually(lambda: _recorded(emu, "UpdateImageCache"), 30,
                                         "UpdateImageCache")
            assert update["ImageCacheId"] == cache_id
            assert update["RetentionDays"] == "30" and update["ImageCacheSize"] == "40"
            assert not any(k.startswith("Image.") for k in update)  # no second pull

            async def followed() -> dict[str, Any] | None:
                obj = await get_ic(cp, "ic-retention")
                status = (obj or {}).get("status") or {}
                days = retention_days(status)
                return obj if status.get("imageCacheSize") == 40 and days is not None and \
                    abs(days - 30) < 0.01 else None

            obj = await eventually(followed, 30, "imageCacheSize 40 and the 30-day expiry")
            status = obj["status"]
            assert status["phase"] == "Ready" and status["observedGeneration"] == 2
            assert spec_applied(status) is None  # nothing was refused
            (cache,) = await client.describe_image_caches(ids=[cache_id])
            assert cache.image_cache_size == 40
            assert parse_time(cache.expire_date_time) == parse_time(status["expireDateTime"])
            events = await object_events(cp, "ic-retention")
            updated = [e for e in events if e["reason"] == "Updated"]
            assert updated and "retentionDays 30" in updated[0]["message"]
            assert "imageCacheSize 40 GiB" in updated[0]["message"]
            assert not any(e["type"] == "Warning" for e in events), events

            # Removing the retention cannot be done in place: said, not dropped.
            await kubectl(cp, "patch", "imagecache", "ic-retention", "--type=merge", "-p",
                          '{"spec":{"retentionDays":null}}')

            async def refused() -> dict[str, Any] | None:
                obj = await get_ic(cp, "ic-retention")
                cond = spec_applied((obj or {}).get("status") or {})
                return obj if cond and cond["status"] == "False" else None

            obj = await eventually(refused, 30, "SpecApplied=False")
            cond = spec_applied(obj["status"])
            assert cond is not None and cond["reason"] == "RecreateRequired"
            assert cond["message"].startswith("spec.retentionDays:")
            assert "re-created" in cond["message"] and cond["observedGeneration"] == 3
            warnings = [e for e in await object_events(cp, "ic-retention")
                        if e["reason"] == "RecreateRequired"]
            assert warnings and warnings[0]["type"] == "Warning"
            assert warnings[0]["message"] == cond["message"]
            assert len(emu.recorded("UpdateImageCache")) == 1
            await asyncio.sleep(1.5)  # a few polls: the refusal stays, nothing more is sent
            obj = await get_ic(cp, "ic-retention")
            assert obj is not None and spec_applied(obj["status"]) == cond
            assert len(emu.recorded("UpdateImageCache")) == 1
            assert obj["status"]["expireDateTime"] == status["expireDateTime"]
    finally:
        await cleanup(cp, "ic-retention")


async def test_a_smaller_size_is_refused_with_an_event_and_a_condition(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:  # noqa: F811
    cp, emu = crd, emulator_realtime
    controller = ImageCacheController(kube_api, eci_client(emu), identity="node-a",
                                      settings=settings())
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-", input=body("ic-shrink", imageCacheSize=30))
            await eventually(lambda: phase_is(cp, "ic-shrink", "Ready"), 60, "Ready")

            await patch_spec(cp, "ic-shrink", imageCacheSize=20)

            async def refused() -> dict[str, Any] | None:
                obj = await get_ic(cp, "ic-shrink")
                cond = spec_applied((obj or {}).get("status") or {})
                return obj if cond and cond["status"] == "False" else None

            obj = await eventually(refused, 30, "SpecApplied=False")
            status = obj["status"]
            cond = spec_applied(status)
            assert cond is not None and cond["reason"] == "RecreateRequired"
            assert cond["message"].startswith("spec.imageCacheSize:")
            assert "30 to 20 GiB" in cond["message"] and "re-created" in cond["message"]
            assert status["imageCacheSize"] == 30 and status["phase"] == "Ready"
            assert status["observedGeneration"] == 2
            events = await object_events(cp, "ic-shrink")
            warnings = [e for e in events if e["reason"] == "RecreateRequired"]
            assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
            assert "spec.imageCacheSize" in warnings[0]["message"]
            assert emu.recorded("UpdateImageCache") == []  # ECI would refuse it

            # Back to the cache's size: the condition clears, still no update sent.
            await patch_spec(cp, "ic-shrink", imageCacheSize=30)

            async def applied() -> dict[str, Any] | None:
                obj = await get_ic(cp, "ic-shrink")
                c = spec_applied((obj or {}).get("status") or {})
                return obj if c and c["status"] == "True" else None

            obj = await eventually(applied, 30, "SpecApplied=True")
            assert obj["status"]["observedGeneration"] == 3
            assert emu.recorded("UpdateImageCache") == []
            warnings = [e for e in await object_events(cp, "ic-shrink")
                        if e["reason"] == "RecreateRequired"]
            assert len(warnings) == 1 and warnings[0].get("count", 1) == 1
    finally:
        await cleanup(cp, "ic-shrink")
