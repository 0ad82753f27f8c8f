"""The cache catalog against the ECI emulator over HTTP (official SDK, signed requests).

The emulator runs on a manual clock at time scale 1, so cache builds, readiness and expiry move
only when the test advances time; the catalog reads the same clock so "now" agrees on both sides.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as eci
from kubernetes_asyncio.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.caches.annotations import AUTO_KEY
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod
from vk_eci.emulator import Emulator
from vk_eci.emulator.clock import ManualClock
from vk_eci.metrics import Metrics

pytestmark = pytest.mark.integration

REGION = "cn-hangzhou"
FLINK = "registry.cn-hangzhou.aliyuncs.com/eci_open/flink:1.13"
NGINX = "registry.cn-hangzhou.aliyuncs.com/eci_open/nginx:1.15.10"
BUSYBOX = "registry.cn-hangzhou.aliyuncs.com/eci_open/busybox:1.30"


@dataclass
class World:
    emu: Any
    clock: ManualClock
    client: EciClient
    metrics: Metrics
    catalog: CacheCatalog

    async def create(self, name: str, images: list[str], *, size: int = 20,
                     retention: int | None = None) -> str:
        req = eci.CreateImageCacheRequest(
            region_id=REGION, image_cache_name=name, image=images, image_cache_size=size,
            retention_days=retention, security_group_id="sg-test", v_switch_id="vsw-test")
        return await self.client.create_image_cache(req)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = ManualClock()
    async with Emulator(access_key_id="AK", access_key_secret="SK", region=REGION,
                        time_scale=1.0, clock=clock) as emu:
        metrics = Metrics()
        client = EciClient(EciClientConfig(region_id=REGION, credential=AccessKey("AK", "SK"),
                                           endpoint=emu.endpoint, protocol="http"), metrics)
        catalog = CacheCatalog(client, metrics=metrics, clock=clock.now)
        yield World(emu, clock, client, metrics, catalog)


def gauge(world: World, phase: str) -> float:
    return world.metrics.registry.get_sample_value("vk_eci_image_caches",
                                                   {"phase": phase}) or 0.0


async def test_full_sync_pages_through_every_cache(world: World) -> None:
    ids = [await world.create(f"cache-{i:02d}", [NGINX if i % 2 else BUSYBOX]) for i in range(27)]
    await world.catalog.sync()
    assert sorted(info.cache_id for info in world.catalog.all()) == sorted(ids)  # > 1 page
    assert gauge(world, "Ready") == 0 and len(world.catalog.index) == 27
    assert world.catalog.index.best([NGINX]) is None  # none Ready yet

    world.clock.advance(3600)
    await world.catalog.sync()
    assert gauge(world, "Ready") == 27
    best = world.catalog.index.best([NGINX], now=world.clock.now())
    assert best is not None and best.cache_id in ids and best.matched == 1
    # Each page is one DescribeImageCaches call: 27 caches need two pages of 20.
    calls = world.metrics.registry.get_sample_value(
        "vk_eci_eci_api_requests_total", {"action": "DescribeImageCaches", "code": "OK"})
    assert calls == 4


async def test_deleted_in_eci_is_dropped_on_resync(world: World) -> None:
    keep = await world.create("keep", [NGINX])
    gone = await world.create("gone", [NGINX])
    world.clock.advance(3600)
    await world.catalog.sync()
    await world.client.delete_image_cache(gone)
    await world.catalog.sync()
    assert keep in world.catalog and gone not in world.catalog
    best = world.catalog.index.best([NGINX], now=world.clock.now())
    assert best is not None and best.cache_id == keep


async def test_refresh_one_follows_a_build_to_ready(world: World) -> None:
    await world.catalog.sync()
    cache_id = await world.create("flink", [FLINK], size=30)  # made after the last sync
    assert cache_id not in world.catalog
    info = await world.catalog.refresh_one(cache_id)
    assert info is not None and info.status in ("Preparing", "Creating")
    assert info.name == "flink" and info.size_gib == 30 and not info.ready(world.clock.now())
    world.clock.advance(3600)
    info = await world.catalog.refresh_one(cache_id)
    assert info is not None and info.ready(world.clock.now()) and info.progress == "100%"
    assert info.snapshot_id.startswith("s-")
    best = world.catalog.index.best([FLINK], now=world.clock.now())
    assert best is not None and best.cache_id == cache_id and best.size_gib == 30
    assert await world.catalog.refresh_one("imc-doesnotexist") is None


async def test_retention_expiry(world: World) -> None:
    cache_id = await world.create("short", [NGINX], retention=1)
    world.clock.advance(3600)
    await world.catalog.sync()
    info = world.catalog.get(cache_id)
    assert info is not None and info.expires_at is not None
    assert info.ready(world.clock.now())
    world.clock.advance(86_400)
    # Between expiry and ECI's clean-up the catalog must not offer the cache.
    assert world.catalog.index.best([NGINX], now=world.clock.now()) is None
    await world.catalog.sync()
    assert world.catalog.index.best([NGINX], now=world.clock.now()) is None
    info = world.catalog.get(cache_id)
    assert info is None or info.state(world.clock.now()) == "Expired"


# -- automatic match catches up with ECI by itself ---------------------------------------------

def auto_pod(i: int, image: str) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name=f"p{i}", namespace="ns", uid=f"uid-{i}",
                                       annotations={AUTO_KEY: "true"}),
                 spec=V1PodSpec(containers=[V1Container(name="c", image=image)]))


def listings(world: World) -> int:
    """Full listings ECI was asked for (a one-cache refresh names its ImageCacheId)."""
    return sum(1 for q in world.emu.recorded("DescribeImageCaches") if "ImageCacheId" not in q)


def relisting(world: World) -> CacheCatalog:
    # Listing ages on the emulator's manual clock, so that the test decides when time passes.
    return CacheCatalog(world.client, min_relist_age=5.0, clock=world.clock.now,
                        monotonic=world.clock.now)


async def test_a_burst_of_pods_without_caches_costs_one_listing_per_min_age(world: World) -> None:
    catalog = relisting(world)
    pods = [auto_pod(i, f"registry.example.com/team/app{i}:1") for i in range(200)]

    async def burst() -> set[str | None]:
        decisions = await asyncio.gather(*(decide_for_pod(p, catalog) for p in pods))
        return {d.result for d in decisions}

    assert await burst() == {"miss"}
    assert listings(world) == 1  # the first listing after start-up, shared by all 200
    world.clock.advance(6)
    assert await burst() == {"miss"}
    assert listings(world) == 2  # stale: one re-listing, shared
    world.clock.advance(1)
    assert await burst() == {"miss"}
    assert listings(world) == 2  # fresh enough: none


async def test_auto_match_sees_a_cache_ready_since_the_last_listing(world: World) -> None:
    catalog = relisting(world)
    await catalog.sync()
    cache_id = await world.create("nginx", [NGINX])
    world.clock.advance(3600)  # built and Ready, but the catalog listed before it existed
    decision = await decide_for_pod(auto_pod(0, NGINX), catalog)
    assert decision.result == "hit" and decision.image_snapshot_id == cache_id
    assert listings(world) == 2
