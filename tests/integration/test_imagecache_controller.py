"""The ImageCache workflow of the ECI documentation, verbatim, against the real control plane's
kubectl, the ImageCache controller and the ECI emulator (through the official SDK)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.placement.node import Placement
from vk_eci.cluster.imagecaches.context import ImageCacheSettings
from vk_eci.cluster.imagecaches.controller import ImageCacheController
from vk_eci.cluster.imagecaches.secrets import NOT_USABLE, SecretPolicy
from vk_eci.cluster.imagecaches.spec import owner_tags
from vk_eci.cluster.imagecaches.status import parse_time

pytestmark = pytest.mark.integration

CRD = Path(__file__).parents[2] / "charts/vk-eci/crds/imagecaches.eci.alibabacloud.com.yaml"
SAMPLE = """\
apiVersion: eci.alibabacloud.com/v1
kind: ImageCache
metadata:
  name: imagecache-sample
spec:
  images:
  - centos:latest
  - busybox:latest
  imagePullSecrets:          # namespace:secretName, only for private registries
  - default:secret1
  - default:secret2
  - kube-system:secret3
  imageCacheSize: 25         # GiB, 20–32768, default 20
  retentionDays: 7           # 1–65536; absent = never expires
"""  # noqa: RUF001 - the documentation's sample, verbatim
STATUS_FIELDS = ("phase", "progress", "imageCacheId", "startTime", "lastUpdatedTime", "events",
                 "expireDateTime")


def settings(**overrides: Any) -> ImageCacheSettings:
    base: dict[str, Any] = dict(
        lease_name=f"ic-test-{uuid.uuid4().hex[:6]}", lease_duration=4.0, renew_deadline=3.0,
        retry_period=0.5, fast_poll=0.2, slow_poll=1.0, secret_retry=0.5, create_retry=1.0,
        placement=Placement(security_group_id="sg-test", vswitch_ids=("vsw-test",)))
    base.update(overrides)
    return ImageCacheSettings(**base)


def eci_client(emu: Any) -> EciClient:
    return EciClient(EciClientConfig(region_id=emu.region, endpoint=emu.endpoint,
                                     protocol="http", credential=AccessKey("AK", "SK"),
                                     backoff_base=0.05, backoff_cap=0.5))


@contextlib.asynccontextmanager
async def running(controller: ImageCacheController) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(controller.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def kubectl(cp: Any, *args: str, check: bool = True, input: str | None = None) -> Any:
    # kubectl runs in a thread: the controller shares this event loop and must keep going.
    return await asyncio.to_thread(cp.kubectl, *args, check=check, input=input)


async def eventually(probe: Callable[[], Any], within: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def get_ic(cp: Any, name: str) -> dict[str, Any] | None:
    result = await kubectl(cp, "get", "imagecache", name, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


async def phase_is(cp: Any, name: str, phase: str) -> dict[str, Any] | None:
    obj = await get_ic(cp, name)
    return obj if obj and (obj.get("status") or {}).get("phase") == phase else None


async def object_events(cp: Any, name: str) -> list[dict[str, Any]]:
    out = await kubectl(cp, "get", "events", "-A", "--field-selector",
                        f"involvedObject.kind=ImageCache,involvedObject.name={name}", "-o", "json")
    return list(json.loads(out.stdout)["items"])


def docker_secret(name: str, namespace: str, server: str, user: str, password: str) -> str:
    config = {"auths": {server: {"username": user, "password": password,
                                 "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}})


@pytest.fixture
async def crd(control_plane: Any) -> Any:
    await kubectl(control_plane, "apply", "-f", str(CRD))
    await kubectl(control_plane, "wait", "--for=condition=Established", "--timeout=30s",
                  "crd/imagecaches.eci.alibabacloud.com")
    return control_plane


async def cleanup(cp: Any, *names: str) -> None:
    for name in names:
        await kubectl(cp, "delete", "imagecache", name, "--wait=false", "--ignore-not-found",
                      check=False)
        await kubectl(cp, "patch", "imagecache", name, "--type=merge", "-p",
                      '{"metadata":{"finalizers":null}}', check=False)


async def test_crd_is_published_with_short_name_and_category(crd: Any) -> None:
    out = await kubectl(crd, "get", "crd/imagecaches.eci.alibabacloud.com")
    assert "imagecaches.eci.alibabacloud.com" in out.stdout
    resources = await kubectl(crd, "api-resources", "--api-group=eci.alibabacloud.com")
    line = next(ln for ln in resources.stdout.splitlines() if ln.startswith("imagecaches"))
    assert line.split()[:5] == ["imagecaches", "ic", "eci.alibabacloud.com/v1", "false",
                                "ImageCache"]
    listing = await kubectl(crd, "get", "ic")
    assert listing.returncode == 0
    served = json.loads((await kubectl(crd, "get", "--raw",
                                       "/apis/eci.alibabacloud.com/v1/imagecaches")).stdout)
    assert served["kind"] == "ImageCacheList"


@pytest.mark.parametrize(("spec", "field", "says"), [
    ({"imageCacheSize": 25}, "spec.images", "Required value"),
    ({"images": []}, "spec.images", "at least 1 items"),
    ({"images": [f"busybox:{i}" for i in range(21)]}, "spec.images", "must have at most 20"),
    # Longer than any image reference (matcher.REFERENCE_MAX).
    ({"images": ["busybox", "r.example.com/" + "a" * 507]}, "spec.images[1]", "Too long"),
    ({"images": ["busybox"], "imageCacheSize": 10}, "spec.imageCacheSize",
     "greater than or equal to 20"),
    ({"images": ["busybox"], "retentionDays": 0}, "spec.retentionDays",
     "greater than or equal to 1"),
    ({"images": ["busybox"], "imagePullSecrets": ["nonamespace"]}, "spec.imagePullSecrets[0]",
     "namespace:secretName"),
])
async def test_invalid_objects_are_refused_naming_the_field(
        crd: Any, spec: dict[str, Any], field: str, says: str) -> None:
    body = json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": "invalid-ic"}, "spec": spec})
    result = await kubectl(crd, "create", "-f", "-", input=body, check=False)
    assert result.returncode != 0
    assert field in result.stderr and says in result.stderr, result.stderr
    assert await get_ic(crd, "invalid-ic") is None


async def test_documentation_workflow_create_get_update_delete(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:
    cp, emu = crd, emulator_realtime
    for name, ns in (("secret1", "default"), ("secret2", "default"), ("secret3", "kube-system")):
        await kubectl(cp, "apply", "-f", "-", input=docker_secret(
            name, ns, f"{name}.registry.example.com", f"user-{name}", f"pw-{name}"))
    client = eci_client(emu)
    # The documented sample names secrets in default and kube-system: an operator who shares
    # those namespaces' pull secrets (--imagecache-shared-pull-namespaces; docs/SECURITY.md).
    shared = SecretPolicy(shared_namespaces=frozenset({"default", "kube-system"}))
    controller = ImageCacheController(kube_api, client, identity="node-a",
                                      settings=settings(secret_policy=shared))
    try:
        async with running(controller):
            created = await kubectl(cp, "create", "-f", "-", input=SAMPLE)
            assert "imagecache.eci.alibabacloud.com/imagecache-sample created" in created.stdout
            await eventually(lambda: phase_is(cp, "imagecache-sample", "Ready"), 60, "Ready")

            table = (await kubectl(cp, "get", "imagecache", "imagecache-sample")).stdout
            header, row = table.splitlines()
            assert header.split() == ["NAME", "AGE", "CACHEID", "PHASE", "PROGRESS"]
            name, _age, cache_id, phase, progress = row.split()
            assert (name, phase, progress) == ("imagecache-sample", "Ready", "100%")
            assert cache_id.startswith("imc-")
            assert "imagecache-sample" in (await kubectl(cp, "get", "ic")).stdout

            doc = yaml.safe_load((await kubectl(cp, "get", "imagecache", "imagecache-sample",
                                                "-o", "yaml")).stdout)
            status = doc["status"]
            for field in STATUS_FIELDS:
                assert status.get(field), f"status.{field} missing: {status}"
            assert status["imageCacheId"] == cache_id
            assert any("Success pull image" in e["message"] for e in status["events"])
            assert all(e["source"] == {"component": "kubelet", "host": "eci"}
                       for e in status["events"])
            start, expiry = parse_time(status["startTime"]), parse_time(status["expireDateTime"])
            assert start and expiry and abs((expiry - start).total_seconds()
                                            - 7 * 86400 * 0.01) < 5

            (create,) = emu.recorded("CreateImageCache")
            assert create["ImageCacheName"] == "imagecache-sample"
            assert [create["Image.1"], create["Image.2"]] == ["centos:latest", "busybox:latest"]
            assert create["ImageCacheSize"] == "25" and create["RetentionDays"] == "7"
            servers = sorted(v for k, v in create.items()
                             if k.startswith("ImageRegistryCredential.") and k.endswith("Server"))
            assert servers == ["secret1.registry.example.com", "secret2.registry.example.com",
                               "secret3.registry.example.com"]
            tags = {create[k]: create[k.replace(".Key", ".Value")] for k in create
                    if k.startswith("Tag.") and k.endswith(".Key")}
            assert tags["eci.alibabacloud.com/imagecache-uid"] == doc["metadata"]["uid"]

            reasons = {e["reason"] for e in await object_events(cp, "imagecache-sample")}
            assert {"Created", "Ready"} <= reasons

            # Changing images updates the ECI cache in place.
            await kubectl(cp, "patch", "imagecache", "imagecache-sample", "--type=merge", "-p",
                          json.dumps({"spec": {"images": ["centos:latest", "busybox:latest",
                                                          "nginx:1.25"]}}))
            await eventually(lambda: _recorded(emu, "UpdateImageCache"), 30, "UpdateImageCache")

            async def updated() -> bool:
                obj = await phase_is(cp, "imagecache-sample", "Ready")
                return bool(obj and "nginx:1.25" in obj["status"].get("images", []))

            await eventually(updated, 60, "the updated cache Ready")
            # The controller's memory of its own writes is dropped by the next listing.
            await eventually(lambda: _true(not controller._acted_at), 15, "_acted_at emptied")
            (update,) = emu.recorded("UpdateImageCache")
            assert update["ImageCacheId"] == cache_id and update["Image.3"] == "nginx:1.25"
            assert len(emu.recorded("CreateImageCache")) == 1

            # Delete: the finalizer deletes the ECI cache, then the object goes.
            await kubectl(cp, "delete", "imagecache/imagecache-sample", "--timeout=60s")
            gone = await kubectl(cp, "get", "imagecache/imagecache-sample", check=False)
            assert gone.returncode != 0 and "NotFound" in gone.stderr
            assert await client.describe_image_caches(ids=[cache_id]) == []
            assert emu.recorded("DeleteImageCache")[0]["ImageCacheId"] == cache_id
    finally:
        await cleanup(cp, "imagecache-sample")


async def _true(value: bool) -> bool:
    return value


async def _recorded(emu: Any, action: str) -> list[dict[str, str]]:
    return list(emu.recorded(action))


async def test_failed_build_without_credentials_shows_reason_and_24h_expiry(
        crd: Any, kube_api: Any, emulator: Any) -> None:
    cp, emu = crd, emulator
    emu.add_private_registry("registry.example.com", "robot", "s3cret")
    controller = ImageCacheController(kube_api, eci_client(emu), identity="node-a",
                                      settings=settings())
    body = json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": "private-nocreds"},
                       "spec": {"images": ["registry.example.com/team/app:1.0"]}})
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-", input=body)
            await eventually(lambda: _recorded(emu, "CreateImageCache"), 30, "CreateImageCache")
            emu.clock.advance(60)
            obj = await eventually(lambda: phase_is(cp, "private-nocreds", "Failed"), 30,
                                   "Failed")
            status = obj["status"]
            assert "401 Unauthorized" in status["message"]
            assert "registry.example.com" in status["message"]
            failure = max(t for e in status["events"] if e["type"] == "Warning"
                          and (t := parse_time(e["lastTimestamp"])) is not None)
            expiry = parse_time(status["expireDateTime"])
            assert failure and expiry and (expiry - failure).total_seconds() == 24 * 3600
            events = await object_events(cp, "private-nocreds")
            failed = [e for e in events if e["reason"] == "Failed"]
            assert failed and failed[0]["type"] == "Warning"
            assert "401 Unauthorized" in failed[0]["message"]

            # 24 h later ECI drops the failed cache: the object says Expired.
            emu.clock.advance(24 * 3600)
            await eventually(lambda: phase_is(cp, "private-nocreds", "Expired"), 30, "Expired")
    finally:
        await cleanup(cp, "private-nocreds")


async def test_missing_secret_is_reported_and_retried(
        crd: Any, kube_api: Any, emulator_realtime: Any, namespace: str) -> None:
    cp, emu = crd, emulator_realtime
    emu.add_private_registry("registry.example.com", "robot", "s3cret")
    # The test namespace is one the operator shares with every ImageCache (secrets.py).
    controller = ImageCacheController(
        kube_api, eci_client(emu), identity="node-a",
        settings=settings(secret_policy=SecretPolicy(shared_namespaces=frozenset({namespace}))))
    body = json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": "needs-secret"},
                       "spec": {"images": ["registry.example.com/team/app:1.0"],
                                "imagePullSecrets": [f"{namespace}:regcred"]}})
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-", input=body)

            async def reported() -> dict[str, Any] | None:
                obj = await get_ic(cp, "needs-secret")
                status = (obj or {}).get("status") or {}
                return obj if status.get("reason") == "InvalidImagePullSecret" else None

            obj = await eventually(reported, 30, "the secret problem in the status")
            # Only "not usable": whether it exists, or its type, is not the author's to learn.
            assert obj["status"]["message"] == \
                f"image pull secret {namespace}:regcred: {NOT_USABLE}"
            assert obj["status"]["phase"] == "Pending"
            events = await object_events(cp, "needs-secret")
            assert any(e["reason"] == "InvalidImagePullSecret" and
                       f"{namespace}:regcred" in e["message"] for e in events)
            assert emu.recorded("CreateImageCache") == []

            # A malformed secret says the same (its type is not told), content never shown.
            await kubectl(cp, "create", "secret", "generic", "regcred", "-n", namespace,
                          "--from-literal=password=hunter2")
            await asyncio.sleep(2)  # several retries (secret_retry 0.5 s) see it
            o = await get_ic(cp, "needs-secret")
            assert (o or {})["status"]["message"] == \
                f"image pull secret {namespace}:regcred: {NOT_USABLE}"
            assert emu.recorded("CreateImageCache") == []
            await kubectl(cp, "delete", "secret", "regcred", "-n", namespace)
            await kubectl(cp, "apply", "-f", "-", input=docker_secret(
                "regcred", namespace, "registry.example.com", "robot", "s3cret"))
            ready = await eventually(lambda: phase_is(cp, "needs-secret", "Ready"), 60, "Ready")
            assert "reason" not in ready["status"] and "message" not in ready["status"]
            all_events = json.dumps(await object_events(cp, "needs-secret"))
            assert "hunter2" not in all_events and "s3cret" not in all_events
    finally:
        await cleanup(cp, "needs-secret")


@pytest.mark.parametrize("legacy", [False, True], ids=["tagged", "earlier-version"])
async def test_a_cache_made_for_the_object_is_recovered_not_duplicated(
        crd: Any, kube_api: Any, emulator_realtime: Any, legacy: bool) -> None:
    """A crash between CreateImageCache and the status write: the cache's tags (this object's
    UID and name, this cluster, or an earlier version's tags without the cluster) prove it ours,
    so it is taken back instead of built twice. Same-named caches of others:
    tests/integration/test_imagecache_foreign.py."""
    cp, emu = crd, emulator_realtime
    client = eci_client(emu)
    name = "adopt-legacy" if legacy else "adopt-me"
    body = json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": name}, "spec": {"images": ["busybox:latest"]}})
    try:
        await kubectl(cp, "create", "-f", "-", input=body)
        uid = (await get_ic(cp, name) or {})["metadata"]["uid"]
        tags = owner_tags(name, uid, ImageCacheSettings().cluster_name)
        if legacy:
            del tags["vk-eci.io/cluster"]
        existing = await client.create_image_cache(eci.CreateImageCacheRequest(
            image_cache_name=name, image=["busybox:latest"], security_group_id="sg-x",
            v_switch_id="vsw-x",
            tag=[eci.CreateImageCacheRequestTag(key=k, value=v) for k, v in tags.items()]))
        controller = ImageCacheController(kube_api, client, identity="node-a",
                                          settings=settings())
        async with running(controller):
            obj = await eventually(lambda: phase_is(cp, name, "Ready"), 60, "Ready")
            assert obj["status"]["imageCacheId"] == existing
            assert len(emu.recorded("CreateImageCache")) == 1  # ours above, none from it
            assert any(e["reason"] == "Recovered" for e in await object_events(cp, name))

            # Deleted in ECI behind our back: the phase and an event say so.
            await client.delete_image_cache(existing)
            await eventually(lambda: phase_is(cp, name, "Deleted"), 30, "Deleted")
            events = await object_events(cp, name)
            assert any(e["reason"] == "Deleted" and e["type"] == "Warning" for e in events)
            assert len(emu.recorded("CreateImageCache")) == 1  # not silently re-created
    finally:
        await cleanup(cp, name)


async def test_two_controllers_only_the_leader_reconciles(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:
    cp, emu = crd, emulator_realtime
    shared = settings()
    controllers = [ImageCacheController(kube_api, eci_client(emu), identity=f"node-{x}",
                                        settings=shared) for x in "ab"]
    tasks = [asyncio.create_task(c.run()) for c in controllers]
    names = [f"two-{i}" for i in range(3)]
    try:
        await eventually(lambda: _leaders(controllers), 20, "a leader")
        await asyncio.sleep(1.5)  # a few retry periods: the other must stay a follower
        assert [c.leading for c in controllers].count(True) == 1
        i = 0 if controllers[0].leading else 1
        leader, follower = controllers[i], controllers[1 - i]
        for name in names:
            await kubectl(cp, "create", "-f", "-", input=json.dumps({
                "apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                "metadata": {"name": name}, "spec": {"images": ["busybox:latest"]}}))
        for name in names:
            await eventually(functools.partial(phase_is, cp, name, "Ready"), 60,
                             f"{name} Ready")
        assert follower.reconciles == 0 and leader.reconciles > 0
        assert sorted(r["ImageCacheName"] for r in emu.recorded("CreateImageCache")) == names

        # Once all are Ready, polling is slow (1 s here) and batched: one listing per round
        # for all three objects, never a describe per object.
        await asyncio.sleep(1.0)
        before = len(emu.recorded("DescribeImageCaches"))
        await asyncio.sleep(3.0)
        rounds = emu.recorded("DescribeImageCaches")[before:]
        assert 2 <= len(rounds) <= 5, rounds
        assert all("ImageCacheId" not in r and "ImageCacheName" not in r for r in rounds)

        # The leader stops: the other takes over (the Lease is released on the way out).
        tasks[i].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tasks[i]
        await eventually(lambda: _leaders([follower]), 15, "the follower to lead")
        await kubectl(cp, "delete", "imagecache", names[0], "--timeout=60s")
        assert follower.reconciles > 0
        assert len(emu.recorded("DeleteImageCache")) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cleanup(cp, *names)


async def _leaders(controllers: list[ImageCacheController]) -> bool:
    return any(c.leading for c in controllers)


async def test_throttling_and_server_errors_are_retried(
        crd: Any, kube_api: Any, emulator_realtime: Any) -> None:
    cp, emu = crd, emulator_realtime
    # Every describe and the first creates fail: the client backs off, the queue retries.
    emu.faults.inject("CreateImageCache", "Throttling.User", 1.0, count=8)
    emu.faults.inject("DescribeImageCaches", "ServiceUnavailable", 0.5, count=20)
    controller = ImageCacheController(kube_api, eci_client(emu), identity="node-a",
                                      settings=settings())
    body = json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": "throttled"}, "spec": {"images": ["busybox:latest"]}})
    try:
        async with running(controller):
            await kubectl(cp, "create", "-f", "-", input=body)
            obj = await eventually(lambda: phase_is(cp, "throttled", "Ready"), 90, "Ready")
            created = emu.recorded("CreateImageCache")
            assert len(created) > 8  # the throttled attempts were retried...
            # ...and every attempt was the same idempotent request: one cache in ECI.
            assert len({r["ClientToken"] for r in created}) == 1
            caches = await eci_client(emu).describe_image_caches(name="throttled")
            assert [c.image_cache_id for c in caches] == [obj["status"]["imageCacheId"]]
    finally:
        await cleanup(cp, "throttled")
