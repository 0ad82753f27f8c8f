"""Attacks on the ImageCache controller (docs/SECURITY.md, item 6), through the real path: the
real control plane and its API server's CRD validation, the node as a process (``vk-eci run``
with its ImageCache controller), the ECI emulator through the official SDK.

The ECI account is shared; a cache the controller did not make for an object (other tags) is
never adopted, updated or deleted, whatever a status writer puts into ``status.imageCacheId``
and whatever the object is named.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from alibabacloud_eci20180808 import models as eci

from tests.fixtures.node import NodeFactory, NodeProcess, eventually
from tests.integration.test_imagecache_controller import (  # noqa: F401 - fixture
    CRD,
    cleanup,
    crd,
    eci_client,
    get_ic,
    kubectl,
    object_events,
)
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

BUSYBOX = "busybox:latest"


async def controller_node(node_factory: NodeFactory) -> NodeProcess:
    return await node_factory(imagecache_controller=True,
                              imagecache_lease_name=f"ic-{uuid.uuid4().hex[:8]}")


async def foreign_cache(emu: Emulator, name: str, tags: dict[str, str]) -> str:
    """A cache made in the account by someone else (directly through the SDK)."""
    return await eci_client(emu).create_image_cache(eci.CreateImageCacheRequest(
        image_cache_name=name, image=["nginx:1.25"], security_group_id="sg-other",
        v_switch_id="vsw-other",
        tag=[eci.CreateImageCacheRequestTag(key=k, value=v) for k, v in tags.items()] or None))


async def exists(emu: Emulator, cache_id: str) -> bool:
    return [c.image_cache_id for c in
            await eci_client(emu).describe_image_caches(ids=[cache_id])] == [cache_id]


def body(name: str, images: list[str]) -> str:
    return json.dumps({"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
                       "metadata": {"name": name}, "spec": {"images": images}})


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


async def warned(cp: Any, name: str, reason: str, *needles: str) -> list[dict[str, Any]]:
    return [e for e in await object_events(cp, name)
            if e["reason"] == reason and e["type"] == "Warning"
            and all(n in e["message"] for n in needles)]


async def ready_own(cp: Any, name: str) -> str | None:
    obj = await get_ic(cp, name)
    status = (obj or {}).get("status") or {}
    return status.get("imageCacheId") if status.get("phase") == "Ready" else None


@pytest.fixture
async def names(crd: Any) -> AsyncIterator[list[str]]:  # noqa: F811
    made: list[str] = []
    yield made
    await cleanup(crd, *made)


async def attack_setup(cp: Any, emu: Emulator, node_factory: NodeFactory,
                       names: list[str]) -> tuple[str, str, NodeProcess, str]:
    """Another team's cache in the account, and an object with its own Ready cache."""
    victim = await foreign_cache(emu, "team-b-cache", {"owner": "team-b"})
    name = f"attacker-{uuid.uuid4().hex[:6]}"
    names.append(name)
    node = await controller_node(node_factory)
    await kubectl(cp, "create", "-f", "-", input=body(name, [BUSYBOX]))
    own = await eventually(lambda: ready_own(cp, name), 60, "the object's own cache", node)
    assert own != victim
    return victim, name, node, own


async def test_deleting_an_object_whose_status_names_a_foreign_cache_leaves_that_cache(
        crd: Any, node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        names: list[str]) -> None:
    """Attack: a user allowed to write ``imagecaches/status`` puts another team's cache id into
    an object's status and deletes the object, to make the node's finalizer delete that cache.
    (The node is down meanwhile, so that the finalizer, not a reconcile, meets the status.)"""
    cp, emu = crd, emulator_realtime
    victim, name, node, own = await attack_setup(cp, emu, node_factory, names)

    await node.stop()
    await kubectl(cp, "patch", "imagecache", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"imageCacheId": victim}}))
    await kubectl(cp, "delete", "imagecache", name, "--wait=false")
    await node.start()

    async def gone() -> bool:
        return await get_ic(cp, name) is None

    await eventually(gone, 60, "the object finalized", node)
    assert await exists(emu, victim), "the foreign cache was deleted"
    # The object's own cache (found by its tags, not by the status) went with it.
    assert not await exists(emu, own), "the object's own cache was left behind"
    assert [r["ImageCacheId"] for r in emu.recorded("DeleteImageCache")] == [own]
    assert await warned(cp, name, "ForeignImageCache", victim, "not deleted")
    assert victim in node.logs() and "not this object's" in node.logs()


async def test_a_status_naming_a_foreign_cache_is_reported_and_replaced(
        crd: Any, node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        names: list[str]) -> None:
    """The same write while the controller runs: it never mirrors, updates or deletes that
    cache; it says so (event, log, condition) and goes back to the object's own cache."""
    cp, emu = crd, emulator_realtime
    victim, name, node, own = await attack_setup(cp, emu, node_factory, names)

    # With a changed spec: were the foreign cache taken for the object's, it would be updated.
    await kubectl(cp, "patch", "imagecache", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"imageCacheId": victim}}))
    await kubectl(cp, "patch", "imagecache", name, "--type=merge",
                  "-p", json.dumps({"spec": {"images": [BUSYBOX, "redis:7"]}}))
    await eventually(lambda: warned(cp, name, "ForeignImageCache", victim, "not this object's"),
                     30, "a ForeignImageCache Warning naming the cache", node)

    async def own_updated() -> bool:
        obj = await get_ic(cp, name)
        status = (obj or {}).get("status") or {}
        return status.get("imageCacheId") == own and status.get("phase") == "Ready" and \
            "redis:7" in status.get("images", [])

    await eventually(own_updated, 60, "its own cache back, updated", node)
    assert [r["ImageCacheId"] for r in emu.recorded("UpdateImageCache")] == [own]
    found = condition(await get_ic(cp, name), "ForeignImageCache")
    assert found and found["status"] == "True" and found["reason"] == "StatusNotOurs"
    assert victim in found["message"]
    assert victim in node.logs() and "not this object's" in node.logs()
    assert len(emu.recorded("CreateImageCache")) == 2  # the foreign one and the object's

    # Written again, and the object deleted at once: whichever step meets it, it survives.
    await kubectl(cp, "patch", "imagecache", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"imageCacheId": victim}}))
    await kubectl(cp, "delete", "imagecache", name, "--timeout=60s")
    assert await exists(emu, victim), "the foreign cache was deleted"
    assert not await exists(emu, own)
    assert [r["ImageCacheId"] for r in emu.recorded("DeleteImageCache")] == [own]


async def test_a_same_named_foreign_cache_is_not_adopted(
        crd: Any, node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        names: list[str]) -> None:
    """Attack (or accident): a cache named like an ImageCache object already exists in the
    account, untagged or made for another cluster's object of that name. Adopting it would let
    the object's deletion delete it."""
    cp, emu = crd, emulator_realtime
    name = f"shared-{uuid.uuid4().hex[:6]}"
    names.append(name)
    untagged = await foreign_cache(emu, name, {})
    other_cluster = await foreign_cache(emu, name, {
        "eci.alibabacloud.com/managed-by": "vk-eci", "eci.alibabacloud.com/imagecache-name": name,
        "eci.alibabacloud.com/imagecache-uid": str(uuid.uuid4())})
    node = await controller_node(node_factory)
    await kubectl(cp, "create", "-f", "-", input=body(name, [BUSYBOX]))
    own = await eventually(lambda: ready_own(cp, name), 60, "the object's own cache", node)
    assert own not in (untagged, other_cluster)
    for foreign in (untagged, other_cluster):
        assert await warned(cp, name, "ForeignImageCache", foreign, "not adopted")
        assert foreign in node.logs()
    found = condition(await get_ic(cp, name), "ForeignImageCache")
    assert found and found["reason"] == "NameInUse"
    created = emu.recorded("CreateImageCache")
    assert len(created) == 3  # the two above and the object's own
    assert not emu.recorded("UpdateImageCache")

    await kubectl(cp, "delete", "imagecache", name, "--timeout=60s")
    assert await exists(emu, untagged) and await exists(emu, other_cluster)
    assert not await exists(emu, own)
    assert [r["ImageCacheId"] for r in emu.recorded("DeleteImageCache")] == [own]


async def test_an_object_stored_before_the_crd_bounds_is_refused_by_the_controller(
        crd: Any, node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        names: list[str]) -> None:
    """An object with an over-long image stored under the earlier CRD (no maxLength) stays in
    etcd after the CRD is upgraded; the controller names the field, ECI never sees it."""
    cp, emu = crd, emulator_realtime
    doc = yaml.safe_load(CRD.read_text())
    items = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["images"]["items"]
    assert items.pop("maxLength") == 520
    name = f"old-{uuid.uuid4().hex[:6]}"
    names.append(name)
    long_image = "registry.example.com/" + "a" * 600 + ":1"
    try:
        await kubectl(cp, "apply", "-f", "-", input=yaml.safe_dump(doc))
        await kubectl(cp, "create", "-f", "-", input=body(name, [BUSYBOX, long_image]))
    finally:
        await kubectl(cp, "apply", "-f", str(CRD))
    node = await controller_node(node_factory)
    await eventually(lambda: warned(cp, name, "InvalidSpec", "spec.images[1]", "at most 520"),
                     30, "an InvalidSpec Warning naming spec.images[1]", node)
    status = ((await get_ic(cp, name)) or {}).get("status") or {}
    assert status.get("reason") == "InvalidSpec" and "spec.images[1]" in status["message"]
    assert not emu.recorded("CreateImageCache")
    await kubectl(cp, "delete", "imagecache", name, "--timeout=60s")
