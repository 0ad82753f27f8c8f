"""Image caches for pods, end to end: real control plane, ECI emulator, the node as a process.

Each scenario is the documented workflow: caches made through the ECI API, a Deployment whose
pod template carries the annotation and names the node, and then what ECI was asked (the
emulator's recorded CreateContainerGroup), what the pod shows (phase, annotations, events) and
what /metrics counts. The emulator runs in real time at time scale 0.01 (a 50 s pull takes
0.5 s); cache builds are slowed (a snapshot takes 3 s) so that "still building" is observable.

Deployments are created as soon as their caches are Ready, with no wait for the node: the
node's periodic re-sync is set far beyond any test (600 s), so an automatic match can only see a
new cache because the lookup re-lists by itself (minimum listing age 1 s here, 5 s by default).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from alibabacloud_eci20180808 import models as eci
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.emulator import emulator_host
from tests.fixtures.node import NodeFactory, NodeProcess
from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.caches.annotations import (
    AUTO_KEY,
    CHOSEN_CACHE_ANNOTATION,
    CHOSEN_MATCH_ANNOTATION,
    EXPLICIT_KEY,
    PERFECT_MATCH_KEY,
)
from vk_eci.cloud.caches.report import CHOSEN_BY_ANNOTATION, ecis_word
from vk_eci.cloud.groups.status import group_events
from vk_eci.emulator import Emulator
from vk_eci.emulator.timing import Timing

pytestmark = pytest.mark.integration

REGION = "cn-hangzhou"
FLINK = "registry.cn-hangzhou.aliyuncs.com/eci_open/flink:1.13"
NGINX = "registry.cn-hangzhou.aliyuncs.com/eci_open/nginx:1.15.10"
BUSYBOX = "registry.cn-hangzhou.aliyuncs.com/eci_open/busybox:1.30"
REDIS = "redis:7"
RESYNC_S = 600.0  # never within a test: only lookup-triggered listings can help
MIN_RELIST_AGE_S = 1.0


@pytest_asyncio.fixture
async def emulator_realtime(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """Overrides the shared fixture (the node fixture uses it): same, but cache builds end
    with a 3 s (real) snapshot, so a test can catch a cache while it is still Creating."""
    timing = Timing(time_scale=0.01, cache_snapshot_s=300.0)
    async with Emulator(access_key_id="AK", access_key_secret="SK", region=REGION,
                        time_scale=0.01, timing=timing, host=emulator_host(request)) as emu:
        yield emu


async def eventually(check: Callable[[], Awaitable[Any]], within: float, what: str,
                     node: NodeProcess | None = None) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    last: Any = None
    while loop.time() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.3)
    logs = node.logs()[-4000:] if node else ""
    raise AssertionError(f"{what} not reached in {within}s (last: {last!r})\n{logs}")


class Scenario:
    """One test's world: ECI caches, a Deployment on the node, and ways to look at them."""

    def __init__(self, emu: Emulator, node: NodeProcess, api: client.ApiClient,
                 namespace: str) -> None:
        self.emu = emu
        self.node = node
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.eci = EciClient(EciClientConfig(region_id=REGION, credential=AccessKey("AK", "SK"),
                                             endpoint=emu.endpoint, protocol="http"))

    async def cache(self, name: str, images: list[str], *, size: int = 20,
                    wait_ready: bool = True) -> str:
        cache_id = await self.eci.create_image_cache(eci.CreateImageCacheRequest(
            region_id=REGION, image_cache_name=name, image=images, image_cache_size=size,
            security_group_id="sg-test", v_switch_id="vsw-test"))
        if wait_ready:
            await self.wait_cache(cache_id)
        return cache_id

    async def wait_cache(self, cache_id: str) -> None:
        async def ready() -> bool:
            [c] = await self.eci.describe_image_caches(ids=[cache_id])
            return bool(c.status == "Ready")
        await eventually(ready, 30, f"cache {cache_id} Ready")

    async def deploy(self, name: str, images: list[str], pod_annotations: dict[str, str], *,
                     deployment_annotations: dict[str, str] | None = None,
                     pull_policy: str | None = "IfNotPresent") -> None:
        labels = {"app": name}
        containers = [client.V1Container(name=f"c{i}", image=image, image_pull_policy=pull_policy,
                                         resources=client.V1ResourceRequirements(
                                             requests={"cpu": "250m", "memory": "512Mi"}))
                      for i, image in enumerate(images)]
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, annotations=deployment_annotations),
            spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels, annotations=pod_annotations),
                    spec=client.V1PodSpec(node_name=self.node.name, containers=containers))))
        await self.apps.create_namespaced_deployment(self.namespace, body)

    async def pod(self, app: str) -> Any:
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=f"app={app}")
        return pods.items[0] if pods.items else None

    async def wait_phase(self, app: str, phase: str, within: float = 60) -> Any:
        async def check() -> Any:
            pod = await self.pod(app)
            return pod if pod is not None and pod.status.phase == phase else None
        return await eventually(check, within, f"pod of {app} {phase}", self.node)

    async def events(self, pod: Any) -> dict[str, list[tuple[str, str]]]:
        """reason -> [(type, message)] of the pod's events."""
        evs = await self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={pod.metadata.name}")
        out: dict[str, list[tuple[str, str]]] = {}
        for e in evs.items:
            out.setdefault(e.reason, []).append((e.type, e.message))
        return out

    async def wait_event(self, app: str, reason: str, within: float = 60,
                         containing: str = "") -> tuple[str, str]:
        """The first event of ``reason`` whose message holds ``containing``. ECI's own events
        are copied onto the pod too; the node's decision events have reasons of their own
        (ImageCacheChosen, NoImageCacheChosen), so SuccessfulHitImageCache and
        ImageCacheMissed on a pod are ECI's word alone."""
        async def check() -> Any:
            pod = await self.pod(app)
            if pod is None:
                return None
            found = [e for e in (await self.events(pod)).get(reason, []) if containing in e[1]]
            return found[0] if found else None
        result: tuple[str, str] = await eventually(check, within, f"event {reason} on {app}",
                                                   self.node)
        return result

    async def eci_used(self, app: str) -> tuple[bool, str | None]:
        """What ECI itself says of the pod's group (its own events, through the SDK): whether
        it said which cache it used, and that cache (None: none)."""
        pod = await self.pod(app)
        [group] = await self.eci.describe_container_groups(
            name=naming.group_name(self.namespace, pod.metadata.name), with_event=True)
        return ecis_word(group_events(group))

    async def reports_follow_eci(self, app: str, chosen_by: str) -> dict[str, str]:
        """Waits until the pod's annotations say what ECI says it used; returns them."""
        said, used = await self.eci_used(app)
        want_cache = used or "none"

        async def check() -> dict[str, str] | None:
            ann = (await self.pod(app)).metadata.annotations or {}
            ok = (ann.get(CHOSEN_CACHE_ANNOTATION) == want_cache
                  and ann.get(CHOSEN_BY_ANNOTATION) == chosen_by)
            return dict(ann) if ok else None
        found: dict[str, str] = await eventually(
            check, 30, f"{app} annotated with ECI's {want_cache} (said: {said})", self.node)
        return found

    def created(self, app: str) -> dict[str, str]:
        """The emulator's decoded CreateContainerGroup query for the pod of ``app``."""
        found = [q for q in self.emu.recorded("CreateContainerGroup")
                 if any(v == self.namespace for k, v in q.items() if k.endswith(".Value"))
                 and app in q.get("ContainerGroupName", "")]
        assert found, f"no CreateContainerGroup for {app}"
        return found[-1]

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = self.node.metrics_url
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            text = await resp.text()
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


@pytest_asyncio.fixture
async def world(node_factory: NodeFactory, emulator_realtime: Emulator,
                kube_api: client.ApiClient, namespace: str) -> Scenario:
    node = await node_factory(imagecache_resync_interval=str(RESYNC_S),
                              imagecache_min_relist_age=str(MIN_RELIST_AGE_S))
    world = Scenario(emulator_realtime, node, kube_api, namespace)

    async def listed() -> bool:
        # The by-phase gauge is exported once the node's start-up listing is in its view.
        try:
            return any(name == "vk_eci_image_caches" for name, _ in await world.metrics())
        except aiohttp.ClientError:
            return False  # not serving yet
    # The start-up listing must be over before a test makes caches: one that began while a
    # cache was building and ended less than the minimum listing age before the pod's lookup
    # would rightly be used as fresh (on a loaded machine a slow start-up lands there), and
    # these tests are about the lookup's own re-listing.
    await eventually(listed, 60, "the node's start-up listing of image caches", node)
    return world


def app_name() -> str:
    return f"app-{uuid.uuid4().hex[:6]}"


# -- explicit ------------------------------------------------------------------------------

async def test_explicit_ready_cache_is_a_hit(world: Scenario) -> None:
    cache_id = await world.cache("flink", [FLINK], size=30)
    app = app_name()
    await world.deploy(app, [FLINK], {EXPLICIT_KEY: cache_id})
    pod = await world.wait_phase(app, "Running")
    query = world.created(app)
    assert query["ImageSnapshotId"] == cache_id
    assert "AutoMatchImageCache" not in query
    assert pod.metadata.annotations[CHOSEN_CACHE_ANNOTATION] == cache_id
    assert pod.metadata.annotations[CHOSEN_MATCH_ANNOTATION] == "1/1"
    kind, message = await world.wait_event(app, "ImageCacheChosen")
    assert kind == "Normal" and cache_id in message and "1/1" in message and "30 GiB" in message
    kind, message = await world.wait_event(app, "SuccessfulHitImageCache")  # ECI's own
    assert kind == "Normal" and cache_id in message


async def test_explicit_cache_still_building_waits_then_runs(world: Scenario) -> None:
    cache_id = await world.cache("flink", [FLINK], wait_ready=False)
    app = app_name()
    await world.deploy(app, [FLINK], {EXPLICIT_KEY: cache_id})
    kind, message = await world.wait_event(app, "ImageCacheNotReady", within=30)
    assert kind == "Warning" and cache_id in message
    assert "Creating" in message or "Preparing" in message
    pod = await world.pod(app)
    assert pod.status.phase == "Pending"
    assert not world.emu.recorded("CreateContainerGroup")  # never started without its cache
    await world.wait_phase(app, "Running", within=60)
    assert world.created(app)["ImageSnapshotId"] == cache_id


async def test_unknown_explicit_cache_keeps_the_pod_pending(world: Scenario) -> None:
    app = app_name()
    await world.deploy(app, [NGINX], {EXPLICIT_KEY: "imc-doesnotexist0000"})
    kind, message = await world.wait_event(app, "ImageCacheNotFound", within=30)
    assert kind == "Warning" and "imc-doesnotexist0000" in message
    await asyncio.sleep(3)
    pod = await world.pod(app)
    assert pod.status.phase == "Pending"
    assert not world.emu.recorded("CreateContainerGroup")


async def test_both_annotations_explicit_wins(world: Scenario) -> None:
    big = await world.cache("big", [NGINX], size=200)
    await world.cache("small", [NGINX], size=20)
    app = app_name()
    await world.deploy(app, [NGINX], {EXPLICIT_KEY: big, AUTO_KEY: "true"})
    await world.wait_phase(app, "Running")
    assert world.created(app)["ImageSnapshotId"] == big
    kind, message = await world.wait_event(app, "ImageCacheAnnotation")
    assert kind == "Normal" and "wins" in message and big in message


async def test_annotation_on_the_deployment_itself_does_nothing(world: Scenario) -> None:
    cache_id = await world.cache("nginx", [NGINX])
    app = app_name()
    await world.deploy(app, [NGINX], {}, deployment_annotations={EXPLICIT_KEY: cache_id,
                                                                 AUTO_KEY: "true"})
    pod = await world.wait_phase(app, "Running")
    query = world.created(app)
    assert "ImageSnapshotId" not in query and "AutoMatchImageCache" not in query
    assert CHOSEN_CACHE_ANNOTATION not in (pod.metadata.annotations or {})


# -- automatic -----------------------------------------------------------------------------

async def test_auto_chooses_by_overlap(world: Scenario) -> None:
    await world.cache("one", [NGINX], size=20)
    both = await world.cache("both", [NGINX, BUSYBOX], size=100)
    app = app_name()
    await world.deploy(app, [NGINX, BUSYBOX], {AUTO_KEY: "true"})
    pod = await world.wait_phase(app, "Running")
    assert world.created(app)["ImageSnapshotId"] == both
    assert pod.metadata.annotations[CHOSEN_MATCH_ANNOTATION] == "2/2"


async def test_auto_chooses_by_size_when_overlap_ties(world: Scenario) -> None:
    await world.cache("big", [NGINX], size=50)
    small = await world.cache("small", [NGINX], size=20)
    await world.cache("mid", [NGINX], size=30)
    app = app_name()
    await world.deploy(app, [NGINX], {AUTO_KEY: "true"})
    await world.wait_phase(app, "Running")
    assert world.created(app)["ImageSnapshotId"] == small


async def test_auto_chooses_the_newest_when_size_ties(world: Scenario) -> None:
    await world.cache("old", [NGINX])
    await asyncio.sleep(1.2)  # ECI creation times have one-second resolution
    new = await world.cache("new", [NGINX])
    app = app_name()
    await world.deploy(app, [NGINX], {AUTO_KEY: "true"})
    await world.wait_phase(app, "Running")
    assert world.created(app)["ImageSnapshotId"] == new


async def test_perfect_match_without_a_perfect_cache_is_a_miss(world: Scenario) -> None:
    """Never widened: no AutoMatchImageCache, so ECI cannot match the partial cache
    server-side; ECI's own events say no hit. (test_image_cache_truth follows the cache the
    node then builds.)"""
    partial = await world.cache("partial", [NGINX])
    app = app_name()
    await world.deploy(app, [NGINX, BUSYBOX, REDIS], {AUTO_KEY: "true", PERFECT_MATCH_KEY: "true"})
    pod = await world.wait_phase(app, "Running")
    query = world.created(app)
    assert "ImageSnapshotId" not in query and "AutoMatchImageCache" not in query
    assert pod.metadata.annotations[CHOSEN_MATCH_ANNOTATION] == "0/3"
    kind, message = await world.wait_event(app, "NoImageCacheChosen", containing="perfect match")
    assert kind == "Warning"
    assert f"{partial} held 1 of 3 images but perfect match was asked" in message
    events = await world.events(pod)
    assert "SuccessfulHitImageCache" not in events and "ImageCacheMissed" not in events


async def test_pull_policy_always_is_sent_as_if_not_present(world: Scenario) -> None:
    cache_id = await world.cache("nginx", [NGINX, BUSYBOX])
    app = app_name()
    await world.deploy(app, [NGINX, BUSYBOX], {AUTO_KEY: "true"}, pull_policy="Always")
    await world.wait_phase(app, "Running")
    query = world.created(app)
    assert query["ImageSnapshotId"] == cache_id
    policies = {query[k] for k in query if k.endswith(".ImagePullPolicy")}
    assert policies == {"IfNotPresent"}
    kind, message = await world.wait_event(app, "ImagePullPolicyOverridden")
    assert kind == "Normal" and "c0" in message and "c1" in message


# -- metrics -------------------------------------------------------------------------------

async def test_metrics_count_what_happened(world: Scenario) -> None:
    """Lookups count pods, not retries: a pod waiting for its cache is retried several times
    but counts one ``not_ready`` (and one ``hit`` once it starts); one naming an unknown cache
    counts one ``not_found`` however often it is retried."""
    building = await world.cache("flink", [FLINK], wait_ready=False)
    hit, miss, explicit, waiting, unknown = (app_name() for _ in range(5))
    await world.deploy(waiting, [FLINK], {EXPLICIT_KEY: building})         # not_ready, then hit
    await world.deploy(unknown, [REDIS], {EXPLICIT_KEY: "imc-unknown0000"})  # not_found, waits
    await world.wait_event(waiting, "ImageCacheNotReady", within=30)
    cache_id = await world.cache("nginx", [NGINX])
    await world.deploy(hit, [NGINX, BUSYBOX], {AUTO_KEY: "true"})          # partial 1/2
    await world.deploy(miss, [REDIS], {AUTO_KEY: "true"})                  # miss 0/1
    await world.deploy(explicit, [NGINX], {EXPLICIT_KEY: cache_id})        # hit 1/1
    for app in (hit, miss, explicit, waiting):
        await world.wait_phase(app, "Running")

    def lookups_of_unknown() -> int:
        # Each attempt at the pod asks ECI for the cache it names, by id.
        return sum(1 for q in world.emu.recorded("DescribeImageCaches")
                   if q.get("ImageCacheId") == "imc-unknown0000")

    async def retried() -> int:
        return lookups_of_unknown() if lookups_of_unknown() >= 3 else 0
    await eventually(retried, 40, "three attempts at the pod naming an unknown cache",
                     world.node)
    assert (await world.pod(unknown)).status.phase == "Pending"
    m = await world.metrics()

    def lookups(mode: str, result: str) -> float:
        return m.get(("vk_eci_image_cache_lookups_total",
                      (("mode", mode), ("result", result))), 0.0)

    assert lookups("auto", "partial") == 1
    assert lookups("auto", "miss") == 1
    assert lookups("auto", "hit") == 0
    assert lookups("explicit", "hit") == 2          # explicit, and waiting once Ready
    assert lookups("explicit", "not_ready") == 1    # waiting, however often it was retried
    assert lookups("explicit", "not_found") == 1    # unknown, retried at least 3 times
    assert m[("vk_eci_pod_images_requested_total", ())] == 5
    assert m[("vk_eci_pod_images_served_from_cache_total", ())] == 3
    assert m[("vk_eci_image_cache_match_duration_seconds_count", ())] == 6
    assert m[("vk_eci_image_caches", (("phase", "Ready"),))] >= 1
    # What ECI says it used: the annotations and the result counters follow it.
    assert (await world.eci_used(hit))[1] == cache_id
    assert (await world.reports_follow_eci(hit, "node"))[CHOSEN_MATCH_ANNOTATION] == "1/2"
    assert await world.eci_used(miss) == (True, None)  # ECI's ImageCacheMissed
    assert (await world.reports_follow_eci(miss, "eci"))[CHOSEN_MATCH_ANNOTATION] == "0/1"
    assert (await world.eci_used(explicit))[1] == cache_id
    assert (await world.eci_used(waiting))[1] == building
    for app in (explicit, waiting):
        await world.reports_follow_eci(app, "node")
    m = await world.metrics()

    def results(result: str, chosen_by: str) -> float:
        return m.get(("vk_eci_image_cache_results_total",
                      (("chosen_by", chosen_by), ("result", result))), 0.0)

    assert results("partial", "node") == 1
    assert results("miss", "eci") == 1
    assert results("hit", "node") == 2
    assert sum(v for (name, _), v in m.items()
               if name == "vk_eci_image_cache_results_total") == 4
    assert m[("vk_eci_image_cache_disagreements_total", ())] == 0
