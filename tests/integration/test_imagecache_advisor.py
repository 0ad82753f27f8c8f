"""The cache advisor on the real control plane: ``vk-eci run --imagecache-advisor``.

The node runs as a process against the ECI emulator (time scale 0.01: a 386 MB Flink image
pulls in 0.5 s, so the hit overhead is scaled alike, 0.02 s), with automatic-match pods from
Deployments. ECI's server-side auto-create is off (``--no-imagecache-auto-create``), so the only
caches are the user's and the advisor's. The advisor re-plans every 2 s and keeps its demand in
a ConfigMap of the test's namespace.

- ``suggest``: the plan is Node events and metrics; no ImageCache object, no ECI cache.
- ``apply``: the advisor creates an ImageCache labelled with the node's name for the repeated
  image set, the ImageCache controller builds it, and the next pod hits it by ECI's own word
  (realised savings counted); when the plan retires it (the node restarted with a budget of no
  cache) it is kept while a pod is still starting from it, and deleted once that pod is gone.
- A user's ImageCache is never written by the advisor (its managed fields name no vk-eci).
- The demand survives a node restart (the ConfigMap is read back).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from matcher import normalize_image
from tests.fixtures.node import NodeFactory, NodeProcess, eventually
from tests.integration.test_image_cache_pods import (  # noqa: F401 - fixture
    BUSYBOX,
    FLINK,
    NGINX,
    Scenario,
    app_name,
    emulator_realtime,
)
from tests.integration.test_imagecache_controller import cleanup, crd  # noqa: F401 - fixture
from vk_eci.advisor.candidates import planned_name
from vk_eci.advisor.model import ADVISOR_OWNED_LABEL
from vk_eci.advisor.persist import KEY, decode
from vk_eci.cloud.caches.annotations import AUTO_KEY, CHOSEN_CACHE_ANNOTATION
from vk_eci.cluster.advising.caches import RETIRING_ANNOTATION
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "eci.alibabacloud.com", "v1", "imagecaches"
SET_A = [FLINK, BUSYBOX]


def advisor_flags(namespace: str, mode: str, **more: str) -> dict[str, str | bool]:
    return {"imagecache_advisor": mode, "imagecache_advisor_interval": "2",
            "imagecache_advisor_save_interval": "1", "imagecache_advisor_window": "3600",
            "imagecache_advisor_cost_per_gib_day": "0.01",
            "imagecache_advisor_hit_overhead": "0.02",
            "imagecache_advisor_configmap": f"{namespace}/advisor",
            "imagecache_auto_create": False, "imagecache_min_relist_age": "1", **more}


async def node_events(api: client.ApiClient, node: NodeProcess, reason: str) -> list[str]:
    events = await client.CoreV1Api(api).list_namespaced_event(
        "default", field_selector=f"involvedObject.kind=Node,involvedObject.name={node.name},"
                                  f"reason={reason}")
    return [e.message for e in events.items]


async def node_event(api: client.ApiClient, node: NodeProcess, reason: str,
                     containing: str) -> str:
    """The one event ``reason`` on the node's Node whose message holds ``containing``."""
    async def found() -> list[str]:
        return [m for m in await node_events(api, node, reason) if containing in m]
    [message] = await eventually(found, 60, f"{reason} on the Node", node)
    return message


async def run_set_a(scene: Scenario) -> str:
    """A Deployment of set A with automatic match, Running; its name."""
    app = app_name()
    await scene.deploy(app, SET_A, {AUTO_KEY: "true"})
    await scene.wait_phase(app, "Running")
    return app


async def imagecaches(api: client.ApiClient) -> dict[str, dict[str, Any]]:
    listing = await client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION,
                                                                            PLURAL)
    return {o["metadata"]["name"]: o for o in listing["items"]}


async def advisor_owned(api: client.ApiClient, node: NodeProcess) -> dict[str, Any] | None:
    """An ImageCache object the node's advisor owns (None: none yet)."""
    owned = [o for o in (await imagecaches(api)).values()
             if (o["metadata"].get("labels") or {}).get(ADVISOR_OWNED_LABEL) == node.name]
    return owned[0] if owned else None


async def user_cache(api: client.ApiClient, name: str, images: list[str]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImageCache",
            "metadata": {"name": name, "labels": {"team": "platform"}},
            "spec": {"images": images, "imageCacheSize": 20}}
    obj: dict[str, Any] = await client.CustomObjectsApi(api).create_cluster_custom_object(
        GROUP, VERSION, PLURAL, body)
    return obj


async def assert_untouched(api: client.ApiClient, before: dict[str, Any]) -> None:
    """The user's object exists with its spec, labels and annotations, and no write of the
    node's main client (field manager ``vk-eci@…``, which the advisor writes with) touched it."""
    name = before["metadata"]["name"]
    now = await client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                                       name)
    assert now["metadata"]["uid"] == before["metadata"]["uid"]
    assert now["spec"] == before["spec"]
    assert now["metadata"].get("labels") == before["metadata"].get("labels")
    assert ADVISOR_OWNED_LABEL not in (now["metadata"].get("labels") or {})
    assert not (now["metadata"].get("annotations") or {})
    managers = {m.get("manager", "") for m in now["metadata"].get("managedFields") or []}
    assert not [m for m in managers if m.startswith("vk-eci@")], managers


async def test_suggest_writes_the_plan_as_events_and_metrics_and_creates_nothing(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    user = f"user-{uuid.uuid4().hex[:6]}"
    before = await user_cache(kube_api, user, [NGINX])
    node = await node_factory(**advisor_flags(namespace, "suggest"))
    scene = Scenario(emulator_realtime, node, kube_api, namespace)
    try:
        app = await run_set_a(scene)
        message = await node_event(kube_api, node, "ImageCacheAdvised",
                                   "create ImageCache advisor-")
        # The Node's events are readable by every tenant: counts only, no other namespace's
        # workload or image names; the operator's log line has them.
        assert "1 workload(s) in 1 namespace(s)" in message
        assert "flink" not in message and namespace not in message and app not in message
        assert f"{namespace}/Deployment/{app}" in node.logs()

        m = await scene.metrics()
        assert m[("vk_eci_imagecache_advisor_caches", (("action", "create"),))] == 1
        assert m[("vk_eci_imagecache_advisor_expected_savings_seconds_per_day", ())] > 0
        assert m[("vk_eci_imagecache_advisor_image_sets", ())] == 1
        assert "advisor (suggest): plan of 1 caches (create 1" in node.logs()
        # Nothing made: no object this node's advisor owns (ImageCaches are cluster-scoped:
        # another test's advisor may have left its own), no ECI cache.
        assert await advisor_owned(kube_api, node) is None
        assert emulator_realtime.recorded("CreateImageCache") == []
        await assert_untouched(kube_api, before)
    finally:
        await cleanup(crd, user)


async def test_apply_creates_caches_pods_hit_and_a_retired_one_goes_after_its_pods(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    user = f"user-{uuid.uuid4().hex[:6]}"
    names = [user]
    node = await node_factory(**advisor_flags(
        namespace, "apply", imagecache_advisor_max_caches="3", imagecache_controller=True,
        imagecache_lease_name=f"ic-{uuid.uuid4().hex[:8]}"))
    scene = Scenario(emulator_realtime, node, kube_api, namespace)
    custom = client.CustomObjectsApi(kube_api)
    try:
        # The user's cache, Ready, serving a pod of its own: supply the advisor never touches.
        await user_cache(kube_api, user, [NGINX])

        async def ready(name: str) -> Any:
            obj = await custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
            status = obj.get("status") or {}
            return obj if status.get("phase") == "Ready" else None
        before = await eventually(lambda: ready(user), 60, "user's ImageCache Ready", node)
        web = app_name()
        await scene.deploy(web, [NGINX], {AUTO_KEY: "true"})
        await scene.wait_phase(web, "Running")

        # Repeated demand for set A: three pods pull it (no cache holds it).
        ci = app_name()
        await scene.deploy(ci, SET_A, {AUTO_KEY: "true"})
        await scene.apps.patch_namespaced_deployment_scale(ci, namespace,
                                                           {"spec": {"replicas": 3}})

        made = await eventually(lambda: advisor_owned(kube_api, node), 60,
                                "an advisor-owned ImageCache", node)
        cache_a = made["metadata"]["name"]
        names.append(cache_a)
        assert cache_a.startswith("advisor-")
        assert sorted(made["spec"]["images"]) == sorted(SET_A)
        assert f"{namespace}/Deployment/{ci}" in made["metadata"]["annotations"][
            "eci.vk-eci.io/advisor-workloads"]
        ready_a = await eventually(lambda: ready(cache_a), 60, "advisor cache Ready", node)
        id_a = ready_a["status"]["imageCacheId"]

        # The next pod of set A starts from it, by ECI's own word.
        hit = app_name()
        await scene.deploy(hit, SET_A, {AUTO_KEY: "true"})
        await scene.wait_phase(hit, "Running")
        assert scene.created(hit)["ImageSnapshotId"] == id_a
        assert await scene.eci_used(hit) == (True, id_a)
        await scene.reports_follow_eci(hit, "node")

        async def realised() -> Any:
            m = await scene.metrics()
            hits = m.get(("vk_eci_imagecache_advisor_hits_total", ()), 0)
            return m if hits >= 1 else None
        m = await eventually(realised, 30, "an advisor cache hit counted", node)
        assert m[("vk_eci_imagecache_advisor_realised_savings_seconds_total", ())] > 0
        assert m[("vk_eci_imagecache_advisor_applied_total", (("action", "create"),))] == 1

        # A pod still starting from cache A: set A, its init container never ends.
        stuck = app_name()
        await scene.apps.create_namespaced_deployment(namespace, client.V1Deployment(
            metadata=client.V1ObjectMeta(name=stuck), spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels={"app": stuck}),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={"app": stuck},
                                                 annotations={AUTO_KEY: "true"}),
                    spec=client.V1PodSpec(node_name=node.name, init_containers=[
                        client.V1Container(name="wait", image=SET_A[0],
                                           image_pull_policy="IfNotPresent",
                                           command=["sh", "-c", "sleep infinity"])],
                        containers=[client.V1Container(name="main", image=SET_A[1],
                                                       image_pull_policy="IfNotPresent")])))))

        async def stuck_on_a() -> Any:
            pod = await scene.pod(stuck)
            ann = (pod.metadata.annotations or {}) if pod is not None else {}
            return pod if ann.get(CHOSEN_CACHE_ANNOTATION) == id_a else None
        await eventually(stuck_on_a, 60, "the stuck pod started from cache A", node)

        # The budget drops to no cache at all (the node restarted with
        # --imagecache-advisor-max-caches 0; its demand comes back from the ConfigMap): A is
        # retired, but stays while the stuck pod is Pending with it.
        await node.stop()
        at = node.argv.index("--imagecache-advisor-max-caches")
        node.argv[at + 1] = "0"
        await node.start()

        async def retiring() -> Any:
            obj = (await imagecaches(kube_api)).get(cache_a)
            return obj is not None and RETIRING_ANNOTATION in (
                obj["metadata"].get("annotations") or {})
        await eventually(retiring, 60, "A marked retiring", node)
        for _ in range(3):  # a few plans later, still there
            await asyncio.sleep(2)
            assert cache_a in await imagecaches(kube_api)  # not deleted under a starting pod
        assert (await scene.pod(stuck)).status.phase == "Pending"
        assert "retire 1" in node.logs().split("--- start 2 ---")[-1]

        # The stuck pod goes: nothing is starting from A any more, so it is deleted.
        await scene.apps.delete_namespaced_deployment(stuck, namespace)

        async def deleted() -> bool:
            return cache_a not in await imagecaches(kube_api)
        await eventually(deleted, 60, "retired cache A deleted", node)
        assert [m for m in await node_events(kube_api, node, "ImageCacheAdvisorDeleted")
                if cache_a in m]
        m = await scene.metrics()
        assert m[("vk_eci_imagecache_advisor_applied_total", (("action", "retire"),))] == 1
        # Deleting a cache leaves pods started from it alone: the pod from A keeps running.
        assert (await scene.pod(hit)).status.phase == "Running"
        await assert_untouched(kube_api, before)
    finally:
        await cleanup(crd, *names)


async def test_apply_never_writes_a_user_object_even_of_the_planned_name(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    """A user's ImageCache squats the name the plan gives set A's cache (with other images and
    no advisor label): the advisor warns on the Node and leaves it exactly as it is."""
    squat = planned_name(normalize_image(i) for i in SET_A)
    before = await user_cache(kube_api, squat, [NGINX])
    node = await node_factory(**advisor_flags(namespace, "apply"))
    scene = Scenario(emulator_realtime, node, kube_api, namespace)
    try:
        await run_set_a(scene)
        message = await node_event(kube_api, node, "ImageCacheNotOwned", squat)
        assert f"{ADVISOR_OWNED_LABEL}={node.name}" in message
        await asyncio.sleep(4)  # two more plans
        await assert_untouched(kube_api, before)
        m = await scene.metrics()
        # Exported at 0 from the start (so a first apply is never lost to rate()): still 0.
        assert m[("vk_eci_imagecache_advisor_applied_total", (("action", "create"),))] == 0
        assert m[("vk_eci_imagecache_advisor_applied_total", (("action", "update"),))] == 0
    finally:
        await cleanup(crd, squat)


async def test_demand_survives_a_node_restart(
        node_factory: NodeFactory, emulator_realtime: Emulator,  # noqa: F811
        kube_api: client.ApiClient, namespace: str, crd: Any) -> None:  # noqa: F811
    node = await node_factory(**advisor_flags(namespace, "suggest"))
    scene = Scenario(emulator_realtime, node, kube_api, namespace)
    core = client.CoreV1Api(kube_api)
    app = app_name()
    await scene.deploy(app, SET_A, {AUTO_KEY: "true"})
    await scene.apps.patch_namespaced_deployment_scale(app, namespace, {"spec": {"replicas": 2}})

    async def stored() -> Any:
        cm = await core.read_namespaced_config_map("advisor", namespace)
        record = decode((cm.data or {}).get(KEY, ""))
        sets = list(record.sets.values())
        # Two pod starts, the first decayed by the seconds between them (window 1 h): just
        # under 2 unless both were seen at the same instant.
        return record if sets and sets[0].pods > 1.9 and record.images else None
    saved = await eventually(stored, 60, "the demand saved in the ConfigMap", node)
    [before] = saved.sets.values()
    assert before.images == tuple(sorted(normalize_image(i) for i in SET_A))
    assert before.workloads == [f"{namespace}/Deployment/{app}"]

    await node.kill()  # no goodbye save
    await node.start()

    async def replanned() -> Any:
        try:
            m = await scene.metrics()
        except aiohttp.ClientError:
            return None  # not listening yet
        ok = (m.get(("vk_eci_imagecache_advisor_image_sets", ()), 0) == 1 and m.get(
            ("vk_eci_imagecache_advisor_caches", (("action", "create"),)), 0) == 1)
        return m if ok else None
    await eventually(replanned, 60, "the restarted node planning from the stored demand", node)
    assert "advisor: loaded 1 image sets from ConfigMap" in node.logs()
    after = await stored()
    assert after is not None and list(after.sets) == list(saved.sets)
