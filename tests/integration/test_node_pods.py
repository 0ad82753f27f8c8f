"""Pods on the virtual node become ECI container groups and back.

Real control plane (scheduler, controllers), the ECI emulator on a fast real clock, and the node
as a subprocess. Assertions read the emulator's recorded requests and live groups, and the pods.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeFactory, NodeProcess, eventually, node_env

pytestmark = pytest.mark.integration


def pod_body(name: str, node: str | None, command: list[str] | None = None,
             **spec: Any) -> Any:  # a pod dict; Any because the client's stubs want V1Pod
    container: dict[str, Any] = {"name": "main", "image": "nginx:1.25"}
    if command:
        container["command"] = command
    body: dict[str, Any] = {"metadata": {"name": name},
                            "spec": {"containers": [container], **spec}}
    if node:
        body["spec"]["nodeName"] = node
    return body


def live_groups(emu: Any) -> list[Any]:
    emu.state.reap()   # Terminating groups whose end has passed are gone
    return list(emu.state.groups.values())


def tag(group: Any, key: str) -> str | None:
    return dict(group.tags).get(key)


async def pod_phase(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    pod = await core.read_namespaced_pod(name, ns)
    return pod.status.phase if pod.status else None


async def test_bare_pod_runs_as_translated_group(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    config_map: Any = {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}
    await core.create_namespaced_config_map(namespace, config_map)
    body = pod_body("web", vk_node.name, ["sh", "-c", "sleep 3600"])
    main = body["spec"]["containers"][0]
    main.update(args=["--port", "8080"], workingDir="/srv",
                env=[{"name": "GREETING", "value": "hello world"},
                     {"name": "MODE", "valueFrom": {"configMapKeyRef": {
                         "name": "settings", "key": "MODE"}}}],
                ports=[{"containerPort": 8080, "protocol": "TCP"}],
                resources={"limits": {"cpu": "1", "memory": "2Gi"}})
    created = await core.create_namespaced_pod(namespace, body)

    async def running() -> Any:
        pod = await core.read_namespaced_pod("web", namespace)
        return pod if pod.status.phase == "Running" and pod.status.pod_ip else None

    pod = await eventually(running, 60, "pod Running with an IP", vk_node)
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["PodScheduled"] == "True"
    assert conditions["Initialized"] == "True"
    assert conditions["ContainersReady"] == "True"
    assert conditions["Ready"] == "True"
    [cs] = pod.status.container_statuses
    assert cs.name == "main" and cs.ready is True and cs.state.running is not None

    [req] = emulator_realtime.recorded("CreateContainerGroup")
    assert req["ClientToken"] == created.metadata.uid
    assert req["Container.1.Name"] == "main"
    assert req["Container.1.Image"] == "nginx:1.25"
    assert req["Container.1.Command.1"] == "sh"
    assert req["Container.1.Arg.1"] == "--port"
    assert req["Container.1.WorkingDir"] == "/srv"
    env = {req[k]: req[k.replace(".Key", ".Value")] for k in req
           if k.startswith("Container.1.EnvironmentVar.") and k.endswith(".Key")}
    assert env["GREETING"] == "hello world"
    assert env["MODE"] == "fast"
    assert float(req["Cpu"]) == 1.0 and float(req["Memory"]) == 2.0
    assert req["VSwitchId"] == "vsw-test" and req["SecurityGroupId"] == "sg-test"
    tags = {req[k]: req[k.replace(".Key", ".Value")] for k in req
            if k.startswith("Tag.") and k.endswith(".Key")}
    assert created.metadata.uid in tags.values()
    assert namespace in tags.values() and vk_node.name in tags.values()
    [group] = live_groups(emulator_realtime)
    assert pod.status.pod_ip == group.intranet_ip
    assert tag(group, "k8s.aliyun.com/pod-uid") == created.metadata.uid
    assert tag(group, "vk-eci.io/node") == vk_node.name


async def test_status_written_only_when_changed(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body("still", vk_node.name,
                                                         ["sleep", "3600"]))
    await eventually(lambda: _phase_is(core, namespace, "still", "Running"), 60, "Running",
                     vk_node)
    # Let the Ready condition and container statuses settle, then several 1 s polls must not
    # touch the pod: an unchanged status is never rewritten.
    await asyncio.sleep(2)
    before = (await core.read_namespaced_pod("still", namespace)).metadata.resource_version
    calls = await eci_calls(vk_node, "DescribeContainerGroupStatus")
    await asyncio.sleep(4)
    after = await core.read_namespaced_pod("still", namespace)
    assert await eci_calls(vk_node, "DescribeContainerGroupStatus") >= calls + 2  # polls ran
    assert after.metadata.resource_version == before, "unchanged status was written again"


async def eci_calls(node: NodeProcess, action: str) -> float:
    """Successful ECI calls of ``action`` so far, from the node's own /metrics."""
    async with aiohttp.ClientSession() as http, \
            http.get(node.metrics_url) as resp:
        text = await resp.text()
    prefix = f'vk_eci_eci_api_requests_total{{action="{action}",code="OK"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines()
               if line.startswith(prefix))


async def test_eci_events_copied_once_each_also_across_restart(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str) -> None:
    node = await node_factory()
    core = client.CoreV1Api(kube_api)
    body = pod_body("two", node.name, ["sleep", "3600"])
    body["spec"]["containers"].append({"name": "side", "image": "busybox:1.36",
                                       "command": ["sleep", "3600"]})
    await core.create_namespaced_pod(namespace, body)

    async def copied() -> list[Any]:
        items = (await core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=two")).items
        return [e for e in items if e.source and e.source.component == "virtual-kubelet"]

    # Both containers are pulled, created and started: their events differ only in message.
    want = {("Pulling", 'Pulling image "nginx:1.25"'), ("Pulling", 'Pulling image "busybox:1.36"'),
            ("Created", "Created container main"), ("Created", "Created container side"),
            ("Started", "Started container main"), ("Started", "Started container side")}

    async def all_copied() -> bool:
        return want <= {(e.reason, e.message) for e in await copied()}

    # An event ECI records after the group's last status change is copied by a follow-up read
    # of the group (up to 15 s after that change) or else by the next full listing (60 s).
    await eventually(all_copied, 90, "ECI events of both containers copied", node)
    await eventually(lambda: _phase_is(core, namespace, "two", "Running"), 60, "Running", node)
    first = await copied()
    # A restarted node (nothing remembered) lists the group with its events twice (start-up
    # reconciliation, first status cycle), then polls for changes.
    await node.kill()
    await node.start()
    await eventually(lambda: _more_calls(node, "DescribeContainerGroups", 2), 60,
                     "two status listings after the restart", node)
    await eventually(lambda: _more_calls(node, "DescribeContainerGroupStatus", 3), 60,
                     "three status polls after the restart", node)
    events = await copied()
    pairs = [(e.reason, e.message) for e in events]
    assert len(pairs) == len(set(pairs)), f"an ECI event was copied twice: {sorted(pairs)}"
    assert {e.metadata.name for e in events} == {e.metadata.name for e in first}
    assert all(e.count == 1 for e in events), [(e.reason, e.count) for e in events]
    assert {e.reason for e in events} >= {"Pulling", "Pulled", "Created",
                                          "Started"}


async def _more_calls(node: NodeProcess, action: str, at_least: int) -> bool:
    try:
        return await eci_calls(node, action) >= at_least
    except aiohttp.ClientConnectionError:
        return False  # the restarted node is not serving /metrics yet


async def test_deployment_scaled_keeps_one_group_per_pod(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    template = pod_body("x", None, ["sleep", "3600"],
                        nodeSelector={"kubernetes.io/hostname": vk_node.name},
                        tolerations=[{"key": "virtual-kubelet.io/provider",
                                      "operator": "Exists", "effect": "NoSchedule"}],
                        terminationGracePeriodSeconds=2)
    template["metadata"] = {"labels": {"app": "web"}}
    deployment: Any = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": template}}
    await apps.create_namespaced_deployment(namespace, deployment)

    async def converged(n: int) -> bool:
        pods = (await core.list_namespaced_pod(namespace)).items
        running = [p for p in pods if p.status.phase == "Running"
                   and p.metadata.deletion_timestamp is None]
        uids = {p.metadata.uid for p in pods}
        groups = live_groups(emulator_realtime)
        group_uids = {tag(g, "k8s.aliyun.com/pod-uid") for g in groups}
        return len(running) == n == len(pods) and len(groups) == n and group_uids == uids

    await eventually(lambda: converged(3), 90, "3 running pods and 3 groups", vk_node)
    await apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
    await eventually(lambda: converged(5), 90, "5 running pods and 5 groups", vk_node)
    await apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 0}})

    async def none_left() -> bool:
        pods = (await core.list_namespaced_pod(namespace)).items
        return not pods and not live_groups(emulator_realtime)

    await eventually(none_left, 90, "no pods and no groups", vk_node)
    assert len(emulator_realtime.recorded("CreateContainerGroup")) == 5


async def test_scheduler_places_pod_by_toleration_and_selector(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body(
        "sched", None, ["sleep", "3600"],
        nodeSelector={"type": "virtual-kubelet", "kubernetes.io/hostname": vk_node.name},
        tolerations=[{"key": "virtual-kubelet.io/provider", "operator": "Equal",
                      "value": "alibabacloud", "effect": "NoSchedule"}]))

    async def placed_and_running() -> bool:
        pod = await core.read_namespaced_pod("sched", namespace)
        return pod.spec.node_name == vk_node.name and pod.status.phase == "Running"

    await eventually(placed_and_running, 60, "scheduled onto the node and Running", vk_node)


async def test_jobs_succeed_and_fail_with_exit_code(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    for name, script in (("ok", "exit 0"), ("bad", "exit 3")):
        await core.create_namespaced_pod(namespace, pod_body(
            name, vk_node.name, ["sh", "-c", script], restartPolicy="Never"))

    async def finished() -> bool:
        return (await pod_phase(core, namespace, "ok") == "Succeeded"
                and await pod_phase(core, namespace, "bad") == "Failed")

    await eventually(finished, 60, "ok Succeeded and bad Failed", vk_node)
    bad = await core.read_namespaced_pod("bad", namespace)
    assert bad.status.container_statuses[0].state.terminated.exit_code == 3
    ok = await core.read_namespaced_pod("ok", namespace)
    assert ok.status.container_statuses[0].state.terminated.exit_code == 0

    # The same through the Job controller.
    batch = client.BatchV1Api(kube_api)
    job: Any = {
        "metadata": {"name": "job3"},
        "spec": {"backoffLimit": 0, "template": pod_body(
            "j", vk_node.name, ["sh", "-c", "exit 3"], restartPolicy="Never")}}
    await batch.create_namespaced_job(namespace, job)

    async def job_failed() -> bool:
        job = await batch.read_namespaced_job("job3", namespace)
        return bool(job.status.failed)

    await eventually(job_failed, 60, "Job failed", vk_node)


async def test_graceful_delete_removes_group_then_pod(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    emu = emulator_realtime
    # 600 s of grace is 6 s at the emulator's time scale (0.01): long enough to watch.
    await core.create_namespaced_pod(namespace, pod_body(
        "gone", vk_node.name, ["sleep", "3600"], terminationGracePeriodSeconds=600))
    await core.create_namespaced_pod(namespace, pod_body(
        "now", vk_node.name, ["sleep", "3600"], terminationGracePeriodSeconds=600))

    async def both_running() -> bool:
        return (await _phase_is(core, namespace, "gone", "Running")
                and await _phase_is(core, namespace, "now", "Running"))

    await eventually(both_running, 60, "both pods Running", vk_node)
    groups = {tag(g, "k8s.aliyun.com/pod-name"): g for g in live_groups(emu)}
    assert set(groups) == {"gone", "now"}
    gone_group = groups["gone"]

    await core.delete_namespaced_pod("gone", namespace)
    # Not force-deleted by the test: the node deletes the group, waits for ECI to end it, then
    # removes the object. Watch both sides until the pod object is gone.
    loop = asyncio.get_running_loop()
    end = loop.time() + 40
    terminating_seen = 0
    while loop.time() < end:
        pods = {p.metadata.name: p for p in (await core.list_namespaced_pod(namespace)).items}
        emu.state.reap()
        group_live = gone_group.id in emu.state.groups
        if "gone" not in pods:
            # The object goes only after the group: never while ECI still stops it.
            assert not group_live, "pod object removed while its ECI group was Terminating"
            break
        if gone_group.deleted_at is not None and group_live:
            assert pods["gone"].metadata.deletion_timestamp is not None
            terminating_seen += 1
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"pod 'gone' not removed within 40 s\n{vk_node.logs()[-4000:]}")
    # The group was Terminating for its grace period (6 s) while the pod object stayed.
    assert gone_group.gone_at is not None and gone_group.deleted_at is not None
    assert gone_group.gone_at - gone_group.deleted_at == pytest.approx(6.0)
    assert terminating_seen >= 10
    deletes = emu.recorded("DeleteContainerGroup")
    assert [d["ContainerGroupId"] for d in deletes] == [gone_group.id]

    # Grace 0: the pod object goes at once; the node still deletes the group.
    now_group = groups["now"]
    await core.delete_namespaced_pod("now", namespace, grace_period_seconds=0)
    assert "now" not in {p.metadata.name
                         for p in (await core.list_namespaced_pod(namespace)).items}

    async def group_deleted() -> bool:
        return now_group.deleted_at is not None

    await eventually(group_deleted, 20, "the grace-0 pod's group deleted", vk_node)
    assert [d["ContainerGroupId"] for d in emu.recorded("DeleteContainerGroup")] == [
        gone_group.id, now_group.id]


async def _phase_is(core: client.CoreV1Api, ns: str, name: str, phase: str) -> bool:
    return await pod_phase(core, ns, name) == phase


async def test_unsupported_pods_get_one_event_and_node_survives(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    await core.create_namespaced_pod(namespace, pod_body(
        "hostpath", vk_node.name, ["sleep", "1"],
        volumes=[{"name": "host", "hostPath": {"path": "/etc"}}]))
    await core.create_namespaced_pod(namespace, pod_body(
        "pvc", vk_node.name, ["sleep", "1"],
        volumes=[{"name": "data", "iscsi": {"targetPortal": "10.0.0.1:3260", "lun": 0,
                                            "iqn": "iqn.2001-04.com.example:storage"}}]))

    async def events() -> list[Any]:
        items = (await core.list_namespaced_event(namespace)).items
        return [e for e in items if e.type == "Warning"
                and e.involved_object.name in ("hostpath", "pvc")]

    async def both_reported() -> bool:
        names = {e.involved_object.name for e in await events()}
        return names == {"hostpath", "pvc"}

    await eventually(both_reported, 30, "a Warning event on each pod", vk_node)
    await asyncio.sleep(3)  # several sync cycles: still one event each, counted once
    evs = await events()
    by_pod = {e.involved_object.name: e for e in evs}
    assert "hostPath" in by_pod["hostpath"].message and "host" in by_pod["hostpath"].message
    assert "data" in by_pod["pvc"].message
    assert all((e.count or 1) == 1 for e in evs), [(e.reason, e.count) for e in evs]
    assert not live_groups(emulator_realtime)
    # The node still works.
    await core.create_namespaced_pod(namespace, pod_body("fine", vk_node.name, ["sleep", "60"]))
    await eventually(lambda: _phase_is(core, namespace, "fine", "Running"), 60, "Running",
                     vk_node)
    assert vk_node.running


async def test_fail_on_create_err_marks_pod_failed(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    body = pod_body("doomed", vk_node.name, ["sleep", "1"],
                    volumes=[{"name": "data", "iscsi": {
                        "targetPortal": "10.0.0.1:3260", "lun": 0,
                        "iqn": "iqn.2001-04.com.example:storage"}}])
    body["metadata"]["annotations"] = {"k8s.aliyun.com/pod-fail-on-create-err": "true"}
    await core.create_namespaced_pod(namespace, body)

    async def failed() -> Any:
        pod = await core.read_namespaced_pod("doomed", namespace)
        return pod if pod.status.phase == "Failed" else None

    pod = await eventually(failed, 30, "pod Failed", vk_node)
    assert pod.status.reason == "ProviderFailed"
    assert "data" in pod.status.message


async def test_throttling_and_server_errors_still_converge(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    emulator_realtime.faults.throttle("CreateContainerGroup", rate=0.5)
    emulator_realtime.faults.server_error("DescribeContainerGroups", rate=0.3)
    for i in range(10):
        await core.create_namespaced_pod(namespace, pod_body(f"p{i}", vk_node.name,
                                                             ["sleep", "3600"]))

    async def all_running() -> bool:
        pods = (await core.list_namespaced_pod(namespace)).items
        return len(pods) == 10 and all(p.status.phase == "Running" for p in pods)

    await eventually(all_running, 120, "10 pods Running despite faults", vk_node)
    assert len(live_groups(emulator_realtime)) == 10
    creates = emulator_realtime.recorded("CreateContainerGroup")
    assert len(creates) > 10  # some were refused and retried ...
    assert len({r["ClientToken"] for r in creates}) == 10  # ... each with its pod's token
    emulator_realtime.faults.clear()


async def test_sigkill_mid_burst_no_duplicate_no_orphan(
        node_factory: NodeFactory, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    node = await node_factory()
    core = client.CoreV1Api(kube_api)
    await eventually(lambda: _node_ready(core, node.name), 60, "node Ready", node)
    # Slow creates (0.5 s each, 16 at a time) so that the kill lands with creates in flight:
    # ECI still makes those groups after the node died, and the new process must adopt them.
    emulator_realtime.faults.set_latency(0.5, "CreateContainerGroup")
    for i in range(30):
        await core.create_namespaced_pod(namespace, pod_body(f"b{i}", node.name,
                                                             ["sleep", "3600"]))

    async def some_groups() -> bool:
        return len(live_groups(emulator_realtime)) >= 5

    await eventually(some_groups, 30, "burst under way", node, every=0.05)
    await node.kill()
    at_kill = len(live_groups(emulator_realtime))
    assert at_kill < 30, "the burst was over before the kill"
    # While the node is down: some pods go away (their groups become orphans) ...
    for i in range(5):
        await core.delete_namespaced_pod(f"b{i}", namespace, grace_period_seconds=0)
    emulator_realtime.faults.set_latency(0.0, "CreateContainerGroup")
    await node.start()

    async def converged() -> bool:
        pods = [p for p in (await core.list_namespaced_pod(namespace)).items
                if p.metadata.deletion_timestamp is None]
        groups = live_groups(emulator_realtime)
        return (len(pods) == 25 and all(p.status.phase == "Running" for p in pods)
                and len(groups) == 25)

    await eventually(converged, 120, "25 Running pods and exactly 25 groups", node)
    uids = sorted(tag(g, "k8s.aliyun.com/pod-uid") or "" for g in live_groups(emulator_realtime))
    pods = (await core.list_namespaced_pod(namespace)).items
    assert uids == sorted(p.metadata.uid for p in pods)  # one group per live pod, no twin


async def _node_ready(core: client.CoreV1Api, name: str) -> bool:
    node = await core.read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


async def test_bad_flag_is_one_clear_line() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "run", "--region", "cn-hangzhou", "--vswitch", "vsw-a",
        "--security-group", "sg-1", "--kubelet-port", "99999", env=node_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "--kubelet-port" in lines[0] and "99999" in lines[0]

    env = {k: v for k, v in node_env().items() if not k.startswith("ALIBABA_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "run", "--region", "cn-hangzhou", "--vswitch", "vsw-a",
        "--security-group", "sg-1", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in err.decode()
