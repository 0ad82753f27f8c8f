"""Image caches through the official SDK (sync and async clients) over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

from matcher import CacheIndex, normalize_image
from tests.fixtures.emulator import EciCaller
from tests.integration.test_emulator_groups import create, create_req, ctr, describe
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration
R = "cn-hangzhou"
FLINK = "flink:1.13"
DAY = 86_400


def cache_req(name: str, images: list[str], **kw: Any) -> m.CreateImageCacheRequest:
    return m.CreateImageCacheRequest(region_id=R, image_cache_name=name, image=images,
                                     security_group_id="sg-1", v_switch_id="vsw-1", **kw)


async def new_cache(call: EciCaller, name: str, images: list[str], **kw: Any) -> str:
    resp = await call("create_image_cache", cache_req(name, images, **kw))
    cache_id: str = resp.body.image_cache_id
    assert cache_id.startswith("imc-") and resp.body.container_group_id.startswith("eci-")
    return cache_id


async def get_cache(call: EciCaller, cache_id: str) -> Any:
    resp = await call("describe_image_caches", m.DescribeImageCachesRequest(
        region_id=R, image_cache_id=cache_id))
    assert len(resp.body.image_caches) == 1
    return resp.body.image_caches[0]


async def ready_cache(emulator: Emulator, call: EciCaller, name: str, images: list[str],
                      **kw: Any) -> str:
    cache_id = await new_cache(call, name, images, **kw)
    emulator.clock.advance(600)
    assert (await get_cache(call, cache_id)).status == "Ready"
    return cache_id


async def test_build_progress_to_ready(emulator: Emulator, eci_call: EciCaller) -> None:
    cache_id = await new_cache(eci_call, "flink", [FLINK], image_cache_size=25, retention_days=7)
    c = await get_cache(eci_call, cache_id)
    assert (c.status, c.progress, c.images, c.image_cache_size) == ("Preparing", "0%", [FLINK], 25)
    assert c.snapshot_id.startswith("s-") and c.expire_date_time
    progress = []
    for _ in range(6):
        emulator.clock.advance(10)
        c = await get_cache(eci_call, cache_id)
        progress.append(int(c.progress.rstrip("%")))
        assert c.status in ("Creating", "Ready")
    assert progress == sorted(progress) and 0 < progress[0] < progress[3] < 100
    emulator.clock.advance(10)  # 5 s prepare + 47 s pull + 10 s snapshot = 62 s
    c = await get_cache(eci_call, cache_id)
    assert (c.status, c.progress) == ("Ready", "100%")
    messages = [e.message for e in c.events]
    assert f"Success pull image {FLINK}" in messages
    by_name = await eci_call("describe_image_caches", m.DescribeImageCachesRequest(
        region_id=R, image_cache_name="flink"))
    assert [x.image_cache_id for x in by_name.body.image_caches] == [cache_id]
    by_snapshot = await eci_call("describe_image_caches", m.DescribeImageCachesRequest(
        region_id=R, snapshot_id=c.snapshot_id))
    assert [x.image_cache_id for x in by_snapshot.body.image_caches] == [cache_id]


async def test_cache_hit_starts_in_about_5s(emulator: Emulator, eci_call: EciCaller) -> None:
    cache_id = await ready_cache(emulator, eci_call, "flink", [FLINK])
    gid = await create(eci_call, create_req(image_snapshot_id=cache_id))
    emulator.clock.advance(4)
    assert (await describe(eci_call, gid)).status == "Pending"
    emulator.clock.advance(1.5)
    g = await describe(eci_call, gid)
    assert g.status == "Running"
    reasons = [(e.reason, e.message) for e in g.events]
    assert ("SuccessfulHitImageCache", f"[eci.imagecache]Successfully hit image cache "
            f"{cache_id}, eci will be scheduled with this image cache.") in reasons
    assert ("Pulled", f"Container image \"{FLINK}\" already present on machine") in reasons
    assert not any(r == "Pulling" for r, _ in reasons)


async def test_explicit_cache_must_be_ready(emulator: Emulator, eci_call: EciCaller) -> None:
    cache_id = await new_cache(eci_call, "building", [FLINK])
    with pytest.raises(ClientException) as e:
        await create(eci_call, create_req(image_snapshot_id=cache_id))
    assert e.value.code == "IncorrectImageCacheStatus" and cache_id in e.value.message


async def test_auto_match_hit_and_miss(emulator: Emulator, eci_call: EciCaller) -> None:
    small = await ready_cache(emulator, eci_call, "small", [FLINK], image_cache_size=20)
    await ready_cache(emulator, eci_call, "big", [FLINK], image_cache_size=100)
    gid = await create(eci_call, create_req(auto_match_image_cache=True))
    g = await describe(eci_call, gid)
    emulator.clock.advance(6)
    g = await describe(eci_call, gid)
    assert g.status == "Running"
    hit = next(e for e in g.events if e.reason == "SuccessfulHitImageCache")
    assert small in hit.message  # the smaller of two equal matches wins
    miss = await create(eci_call, create_req("miss", auto_match_image_cache=True,
                                             containers=[ctr(image="redis:7")]))
    events = (await describe(eci_call, miss)).events
    reasons = [e.reason for e in events]
    assert "ImageCacheMissed" in reasons and "ImageCacheAutoCreated" in reasons
    auto = next(e for e in events if e.reason == "ImageCacheAutoCreated")
    auto_id = auto.message.split("Image cache ")[1].split()[0]
    emulator.clock.advance(600)
    assert (await get_cache(eci_call, auto_id)).images == ["redis:7"]
    later = await create(eci_call, create_req("later", auto_match_image_cache=True,
                                              containers=[ctr(image="redis:7")]))
    assert any(auto_id in e.message for e in (await describe(eci_call, later)).events
               if e.reason == "SuccessfulHitImageCache")


async def test_retention_expiry_deletes(emulator: Emulator, eci_call: EciCaller) -> None:
    cache_id = await ready_cache(emulator, eci_call, "short", ["nginx"], retention_days=1)
    emulator.clock.advance(DAY - 700)
    assert (await get_cache(eci_call, cache_id)).status == "Ready"
    emulator.clock.advance(200)
    resp = await eci_call("describe_image_caches", m.DescribeImageCachesRequest(
        region_id=R, image_cache_id=cache_id))
    assert resp.body.image_caches == []
    with pytest.raises(ClientException) as e:
        await create(eci_call, create_req(image_snapshot_id=cache_id))
    assert e.value.code == "InvalidImageSnapshotId.NotFound"


async def test_private_registry_failure_and_success(emulator: Emulator,
                                                    eci_call: EciCaller) -> None:
    image = "registry.cn-hangzhou.aliyuncs.com/team/app:1"
    emulator.add_private_registry("registry.cn-hangzhou.aliyuncs.com", "bob", "s3cret")
    failed = await new_cache(eci_call, "private-no-creds", [image])
    emulator.clock.advance(30)
    c = await get_cache(eci_call, failed)
    assert c.status == "Failed"
    assert any("401 Unauthorized" in e.message for e in c.events)
    # A failed build is kept 24 h, then deleted.
    emulator.clock.advance(DAY + 1)
    resp = await eci_call("describe_image_caches", m.DescribeImageCachesRequest(
        region_id=R, image_cache_id=failed))
    assert resp.body.image_caches == []
    # The -vpc endpoint is the same registry: the credential for it works.
    cred = m.CreateImageCacheRequestImageRegistryCredential(
        server="registry-vpc.cn-hangzhou.aliyuncs.com", user_name="bob", password="s3cret")
    ok = await ready_cache(emulator, eci_call, "private-ok", [image],
                           image_registry_credential=[cred])
    assert (await get_cache(eci_call, ok)).images == [image]
    # Groups alike: no credential -> ErrImagePull and Pending; right one -> Running.
    gid = await create(eci_call, create_req("nocred", containers=[ctr(image=image)]))
    emulator.clock.advance(30)
    g = await describe(eci_call, gid)
    assert g.status == "Pending"
    assert g.containers[0].current_state.reason == "ImagePullBackOff"
    assert "401 Unauthorized" in g.containers[0].current_state.message
    assert "s3cret" not in json.dumps([e.message for e in g.events])
    good = m.CreateContainerGroupRequestImageRegistryCredential(
        server="registry.cn-hangzhou.aliyuncs.com", user_name="bob", password="s3cret")
    gid2 = await create(eci_call, create_req("withcred", containers=[ctr(image=image)],
                                             image_registry_credential=[good]))
    emulator.clock.advance(120)
    assert (await describe(eci_call, gid2)).status == "Running"


async def test_server_side_matching_agrees_with_matcher(emulator: Emulator,
                                                        eci_call: EciCaller) -> None:
    specs = [("ca", ["nginx:1.7.9", "redis:7"], 30), ("cb", ["nginx:1.7.9"], 20),
             ("cc", ["redis:7", "busybox", "nginx:1.7.9"], 40), ("cd", ["alpine"], 20)]
    ids = {}
    for name, images, size in specs:
        ids[name] = await new_cache(eci_call, name, images, image_cache_size=size)
        emulator.clock.advance(1)
    emulator.clock.advance(900)
    index = CacheIndex()
    for name, images, size in specs:
        c = emulator.state.caches.caches[ids[name]]
        index.upsert(ids[name], [normalize_image(i) for i in images], size_gib=size,
                     created_at=c.created)
    now = emulator.clock.now()
    for query, full, count in [(["nginx:1.7.9", "redis:7"], False, 1),
                               (["docker.io/library/nginx:1.7.9", "redis:7"], True, 1),
                               (["busybox", "redis:7", "nginx:1.7.9"], False, 2),
                               (["alpine:latest"], False, 1), (["python"], False, 1)]:
        resp = await eci_call("describe_image_caches", m.DescribeImageCachesRequest(
            region_id=R, match_image=query, image_full_match=full,
            image_match_count_request=count, limit=10))
        got = [c.image_cache_id for c in resp.body.image_caches]
        expected = [x.cache_id for x in index.rank(
            [normalize_image(q) for q in query], limit=10, min_matched=count,
            require_all=full, now=now)]
        assert got == expected, query
    assert got == []  # "python" is in no cache


async def test_update_and_delete(emulator: Emulator, eci_call: EciCaller) -> None:
    cache_id = await new_cache(eci_call, "upd", ["nginx"])
    with pytest.raises(ClientException) as e:
        await eci_call("update_image_cache", m.UpdateImageCacheRequest(
            region_id=R, image_cache_id=cache_id, image=["nginx", "redis:7"]))
    assert e.value.code == "IncorrectImageCacheStatus"
    emulator.clock.advance(600)
    await eci_call("update_image_cache", m.UpdateImageCacheRequest(
        region_id=R, image_cache_id=cache_id, image=["nginx", "redis:7"], image_cache_size=30))
    c = await get_cache(eci_call, cache_id)
    assert c.status == "Updating" and c.image_cache_size == 30
    emulator.clock.advance(600)
    c = await get_cache(eci_call, cache_id)
    assert c.status == "Ready" and c.images == ["nginx", "redis:7"]
    await eci_call("delete_image_cache", m.DeleteImageCacheRequest(region_id=R,
                                                                   image_cache_id=cache_id))
    with pytest.raises(ClientException) as e:
        await eci_call("delete_image_cache", m.DeleteImageCacheRequest(region_id=R,
                                                                       image_cache_id=cache_id))
    assert e.value.code.endswith("NotFound") and cache_id in e.value.message


@pytest.mark.parametrize(("kw", "code", "field"), [
    ({"image": []}, "MissingParameter", "Image.1"),
    ({"image": [f"img{i}" for i in range(21)]}, "InvalidParameter", "Image"),
    ({"image_cache_size": 19}, "InvalidParameter", "ImageCacheSize"),
    ({"image_cache_size": 32769}, "InvalidParameter", "ImageCacheSize"),
    ({"retention_days": 0}, "InvalidParameter", "RetentionDays"),
    ({"retention_days": 65537}, "InvalidParameter", "RetentionDays"),
    ({"image": ["UPPER/Case"]}, "InvalidParameter", "Image.1"),
    ({"image_cache_name": None}, "MissingParameter", "ImageCacheName"),
])
async def test_cache_validation(emulator: Emulator, eci_call: EciCaller, kw: dict[str, Any],
                                code: str, field: str) -> None:
    req = cache_req("valid", ["nginx"])
    for key, value in kw.items():
        setattr(req, key, value)
    with pytest.raises(ClientException) as e:
        await eci_call("create_image_cache", req)
    assert e.value.code == code and field in e.value.message
    assert not emulator.state.caches.caches


async def test_cache_client_token(emulator: Emulator, eci_call: EciCaller) -> None:
    a = await new_cache(eci_call, "tok", ["nginx"], client_token="t1")
    assert await new_cache(eci_call, "tok", ["nginx"], client_token="t1") == a
    with pytest.raises(ClientException) as e:
        await new_cache(eci_call, "tok", ["redis"], client_token="t1")
    assert e.value.code == "IdempotentParameterMismatch"
