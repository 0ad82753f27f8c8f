"""Kubelet semantics that Kubernetes tooling relies on, on the virtual node (docs/BEHAVIOUR.md).

Real control plane, the ECI emulator on a real clock, the node as a subprocess started with
``--cluster-dns`` (the test world's). Assertions read Kubernetes events by reason, pod statuses and
the emulator's recorded ``CreateContainerGroup`` requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.fixtures.node import NodeProcess, eventually, world_flags

pytestmark = pytest.mark.integration


def pod(name: str, node: str, *, env: list[Any] | None = None, **extra: Any) -> Any:
    container: dict[str, Any] = {"name": "main", "image": "nginx:1.25",
                                 "command": ["sleep", "3600"]}
    if env:
        container["env"] = env
    container.update(extra.pop("container", {}))
    return {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [container],
                                                 **extra}}


def request_for(emu: Any, name: str) -> dict[str, str]:
    """The last CreateContainerGroup sent for the pod called ``name``."""
    for req in reversed(emu.recorded("CreateContainerGroup")):
        tags = {req[k]: req[k.replace(".Key", ".Value")] for k in req
                if k.startswith("Tag.") and k.endswith(".Key")}
        if tags.get("k8s.aliyun.com/pod-name") == name:
            return req
    raise AssertionError(f"no CreateContainerGroup for pod {name}")


def listed(req: dict[str, str], prefix: str) -> list[str]:
    return [req[f"{prefix}.{i}"] for i in range(1, 20) if f"{prefix}.{i}" in req]


async def reasons(core: client.CoreV1Api, ns: str, name: str) -> dict[str, Any]:
    items = (await core.list_namespaced_event(ns)).items
    return {e.reason: e for e in items if e.involved_object.name == name}


async def running(core: client.CoreV1Api, ns: str, name: str) -> Any:
    p = await core.read_namespaced_pod(name, ns)
    return p if p.status.phase == "Running" else None


async def test_missing_config_maps_and_secrets_are_events_by_reason_then_retried(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    secret: Any = {"metadata": {"name": "creds"}, "stringData": {"user": "admin"}}
    await core.create_namespaced_secret(namespace, secret)
    cm_ref = {"configMapKeyRef": {"name": "settings", "key": "MODE"}}
    await core.create_namespaced_pod(namespace, pod(
        "needs-cm", vk_node.name, env=[{"name": "MODE", "valueFrom": cm_ref}]))
    key_ref = {"secretKeyRef": {"name": "creds", "key": "password"}}
    await core.create_namespaced_pod(namespace, pod(
        "needs-key", vk_node.name, env=[{"name": "PASSWORD", "valueFrom": key_ref}]))
    await core.create_namespaced_pod(namespace, pod(
        "optional", vk_node.name,
        container={"envFrom": [{"secretRef": {"name": "absent", "optional": True}}],
                   "volumeMounts": [{"name": "conf", "mountPath": "/conf"}]},
        volumes=[{"name": "conf", "configMap": {"name": "nothing", "optional": True}}]))

    async def all_reported() -> bool:
        cm = await reasons(core, namespace, "needs-cm")
        key = await reasons(core, namespace, "needs-key")
        opt = await reasons(core, namespace, "optional")
        return ("MandatoryConfigMapNotFound" in cm and "MandatorySecretKeyNotFound" in key
                and {"OptionalSecretNotFound", "OptionalConfigMapNotFound"} <= set(opt))

    await eventually(all_reported, 60, "an event by reason on each pod", vk_node)
    cm_event = (await reasons(core, namespace, "needs-cm"))["MandatoryConfigMapNotFound"]
    assert cm_event.type == "Warning" and "config map settings" in cm_event.message
    key_event = (await reasons(core, namespace, "needs-key"))["MandatorySecretKeyNotFound"]
    assert "key password of secret creds" in key_event.message
    assert "admin" not in key_event.message
    logs = vk_node.logs()
    assert "MandatoryConfigMapNotFound" in logs or "config map settings not found" in logs
    # The mandatory ones stay Pending, with no group; the optional one runs without them.
    await eventually(lambda: running(core, namespace, "optional"), 60, "optional Running",
                     vk_node)
    for name in ("needs-cm", "needs-key"):
        assert (await core.read_namespaced_pod(name, namespace)).status.phase == "Pending"
        with pytest.raises(AssertionError):
            request_for(emulator_realtime, name)
    # The object appears: the pod is retried and runs with its value.
    config_map: Any = {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}
    await core.create_namespaced_config_map(namespace, config_map)
    await eventually(lambda: running(core, namespace, "needs-cm"), 90, "needs-cm Running",
                     vk_node)
    req = request_for(emulator_realtime, "needs-cm")
    env = {req[k]: req.get(k.replace(".Key", ".Value")) for k in req
           if k.startswith("Container.1.EnvironmentVar.") and k.endswith(".Key")}
    assert env["MODE"] == "fast"


async def test_each_dns_policy_is_sent_to_eci_as_the_kubelet_builds_it(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any, control_plane: Any) -> None:
    core = client.CoreV1Api(kube_api)
    # The node's --cluster-dns: the session's CoreDNS once a test started it, else the default.
    cluster_dns = world_flags(Path(control_plane.dir))["cluster-dns"]
    extra = {"nameservers": ["1.1.1.1"], "searches": ["corp.example"],
             "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    await core.create_namespaced_pod(namespace, pod("cluster-first", vk_node.name))
    await core.create_namespaced_pod(namespace, pod(
        "host-net-policy", vk_node.name, dnsPolicy="ClusterFirstWithHostNet"))
    await core.create_namespaced_pod(namespace, pod(
        "cluster-first-extra", vk_node.name, dnsPolicy="ClusterFirst", dnsConfig=extra))
    await core.create_namespaced_pod(namespace, pod("default", vk_node.name,
                                                    dnsPolicy="Default"))
    await core.create_namespaced_pod(namespace, pod("none", vk_node.name, dnsPolicy="None",
                                                    dnsConfig=extra))
    names = ("cluster-first", "host-net-policy", "cluster-first-extra", "default", "none")
    for name in names:  # ECI (the emulator) accepted each request
        await eventually(lambda n=name: running(core, namespace, n), 60, f"{name} Running",
                         vk_node)
    search = [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    for name in ("cluster-first", "host-net-policy"):
        req = request_for(emulator_realtime, name)
        assert req["DnsPolicy"] == "None"
        assert listed(req, "DnsConfig.NameServer") == [cluster_dns]
        assert listed(req, "DnsConfig.Search") == search
        assert (req["DnsConfig.Option.1.Name"], req["DnsConfig.Option.1.Value"]) == ("ndots",
                                                                                     "5")
        assert "DnsConfig.Option.2.Name" not in req
    req = request_for(emulator_realtime, "cluster-first-extra")
    assert req["DnsPolicy"] == "None"
    assert listed(req, "DnsConfig.NameServer") == [cluster_dns, "1.1.1.1"]
    assert listed(req, "DnsConfig.Search") == [*search, "corp.example"]
    assert (req["DnsConfig.Option.1.Name"], req["DnsConfig.Option.1.Value"]) == ("ndots", "2")
    assert req["DnsConfig.Option.2.Name"] == "edns0"
    req = request_for(emulator_realtime, "default")
    assert req["DnsPolicy"] == "Default"
    assert not [k for k in req if k.startswith("DnsConfig")]
    req = request_for(emulator_realtime, "none")
    assert req["DnsPolicy"] == "None"
    assert listed(req, "DnsConfig.NameServer") == ["1.1.1.1"]
    assert listed(req, "DnsConfig.Search") == ["corp.example"]
    assert (req["DnsConfig.Option.1.Name"], req["DnsConfig.Option.1.Value"]) == ("ndots", "2")


async def test_startup_probe_is_folded_into_liveness_with_a_warning(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    probe = {"exec": {"command": ["true"]}}
    await core.create_namespaced_pod(namespace, pod("slow-start", vk_node.name, container={
        "livenessProbe": {**probe, "initialDelaySeconds": 5},
        "startupProbe": {**probe, "initialDelaySeconds": 10, "periodSeconds": 5,
                         "failureThreshold": 30}}))
    await eventually(lambda: running(core, namespace, "slow-start"), 60, "Running", vk_node)
    req = request_for(emulator_realtime, "slow-start")
    assert req["Container.1.LivenessProbe.InitialDelaySeconds"] == "160"
    assert not [k for k in req if "Startup" in k]

    async def warned() -> Any:
        return (await reasons(core, namespace, "slow-start")).get("StartupProbeNotSupported")

    event = await eventually(warned, 30, "StartupProbeNotSupported event", vk_node)
    assert event.type == "Warning" and "160s" in event.message


async def test_native_sidecar_runs_beside_the_app_and_the_pod_leaves_init(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    inits = [{"name": "setup", "image": "busybox:1.36", "command": ["sh", "-c", "exit 0"]},
             {"name": "proxy", "image": "envoyproxy/envoy:v1.30.1", "restartPolicy": "Always",
              "command": ["sleep", "3600"]}]
    await core.create_namespaced_pod(namespace, pod("meshed", vk_node.name,
                                                    initContainers=inits))

    async def up() -> Any:
        p = await running(core, namespace, "meshed")
        conditions = {c.type: c.status for c in (p.status.conditions or [])} if p else {}
        return p if conditions.get("Initialized") == "True" and conditions.get(
            "Ready") == "True" else None

    p = await eventually(up, 60, "meshed Running, Initialized and Ready", vk_node)
    by_name = {s.name: s for s in p.status.init_container_statuses}
    assert by_name["setup"].state.terminated is not None
    assert by_name["setup"].state.terminated.exit_code == 0
    assert by_name["proxy"].state.running is not None
    assert [s.name for s in p.status.container_statuses] == ["main"]
    req = request_for(emulator_realtime, "meshed")
    # The sidecar is an ECI app container started with the app, after the init container.
    assert listed({k.replace(".Name", ""): v for k, v in req.items()
                   if k.startswith("Container.") and k.count(".") == 2
                   and k.endswith(".Name")}, "Container") == ["proxy", "main"]
    assert req["InitContainer.1.Name"] == "setup" and "InitContainer.2.Name" not in req


async def test_statefulset_with_claims_runs_on_the_pv_sources_eci_can_mount(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    apps = client.AppsV1Api(kube_api)
    cls = f"manual-{namespace}"  # PVs are cluster-wide: a class per test namespace
    nfs_pv: Any = {"metadata": {"name": f"{namespace}-nfs"}, "spec": {
        "capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": cls, "nfs": {"server": "10.0.0.5", "path": "/exports/web"}}}
    disk_pv: Any = {"metadata": {"name": f"{namespace}-disk"}, "spec": {
        "capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": f"{cls}-disk", "csi": {
            "driver": "diskplugin.csi.alibabacloud.com", "volumeHandle": "d-bp1test",
            "fsType": "ext4"}}}
    nas_pv: Any = {"metadata": {"name": f"{namespace}-nas"}, "spec": {
        "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
        "storageClassName": f"{cls}-nas", "csi": {
            "driver": "nasplugin.csi.alibabacloud.com", "volumeHandle": f"{namespace}-nas",
            "volumeAttributes": {"server": "0cd8b4a576-abc.cn-hangzhou.nas.aliyuncs.com",
                                 "path": "/shared"}}}}
    await core.create_persistent_volume(nfs_pv)
    await core.create_persistent_volume(disk_pv)
    await core.create_persistent_volume(nas_pv)
    try:
        template = pod("web", vk_node.name, container={
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]})
        sts: Any = {"metadata": {"name": "web"}, "spec": {
            "serviceName": "web", "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template["spec"]},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                "resources": {"requests": {"storage": "1Gi"}}}}]}}
        await apps.create_namespaced_stateful_set(namespace, sts)
        claim: Any = {"metadata": {"name": "scratch"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": f"{cls}-disk",
            "resources": {"requests": {"storage": "20Gi"}}}}
        await core.create_namespaced_persistent_volume_claim(namespace, claim)
        await core.create_namespaced_pod(namespace, pod(
            "disk-user", vk_node.name,
            container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
            volumes=[{"name": "scratch", "persistentVolumeClaim": {"claimName": "scratch"}}]))
        shared: Any = {"metadata": {"name": "shared"}, "spec": {
            "accessModes": ["ReadWriteMany"], "storageClassName": f"{cls}-nas",
            "resources": {"requests": {"storage": "10Gi"}}}}
        await core.create_namespaced_persistent_volume_claim(namespace, shared)
        await core.create_namespaced_pod(namespace, pod(
            "nas-user", vk_node.name,
            container={"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
            volumes=[{"name": "shared", "persistentVolumeClaim": {"claimName": "shared",
                                                                  "readOnly": True}}]))
        await core.create_namespaced_pod(namespace, pod(
            "no-claim", vk_node.name,
            container={"volumeMounts": [{"name": "gone", "mountPath": "/gone"}]},
            volumes=[{"name": "gone", "persistentVolumeClaim": {"claimName": "gone"}}]))

        await eventually(lambda: running(core, namespace, "web-0"), 90, "web-0 Running",
                         vk_node)
        req = request_for(emulator_realtime, "web-0")
        assert (req["Volume.1.Name"], req["Volume.1.Type"]) == ("data", "NFSVolume")
        assert (req["Volume.1.NFSVolume.Server"], req["Volume.1.NFSVolume.Path"]) == (
            "10.0.0.5", "/exports/web")
        assert req["Container.1.VolumeMount.1.MountPath"] == "/data"
        await eventually(lambda: running(core, namespace, "disk-user"), 90,
                         "disk-user Running", vk_node)
        req = request_for(emulator_realtime, "disk-user")
        assert req["Volume.1.Type"] == "DiskVolume"
        assert (req["Volume.1.DiskVolume.DiskId"], req["Volume.1.DiskVolume.FsType"],
                req["Volume.1.DiskVolume.DiskSize"]) == ("d-bp1test", "ext4", "20")

        await eventually(lambda: running(core, namespace, "nas-user"), 90,
                         "nas-user Running", vk_node)
        req = request_for(emulator_realtime, "nas-user")
        assert req["Volume.1.Type"] == "NFSVolume"
        assert (req["Volume.1.NFSVolume.Server"], req["Volume.1.NFSVolume.Path"],
                req["Volume.1.NFSVolume.ReadOnly"]) == (
            "0cd8b4a576-abc.cn-hangzhou.nas.aliyuncs.com", "/shared", "True")

        async def named() -> Any:
            return (await reasons(core, namespace, "no-claim")).get("ClaimNotFound")

        event = await eventually(named, 30, "ClaimNotFound event", vk_node)
        assert event.type == "Warning" and "gone" in event.message
        assert (await core.read_namespaced_pod("no-claim", namespace)).status.phase == "Pending"
    finally:
        await apps.delete_namespaced_stateful_set("web", namespace)
        for pv in (nfs_pv, disk_pv, nas_pv):
            await core.delete_persistent_volume(pv["metadata"]["name"])


async def test_short_lived_projected_token_is_warned_as_not_refreshed(
        vk_node: NodeProcess, kube_api: client.ApiClient, namespace: str,
        emulator_realtime: Any) -> None:
    core = client.CoreV1Api(kube_api)
    token_volume = {"name": "vault-token", "projected": {"sources": [{"serviceAccountToken": {
        "path": "token", "audience": "vault", "expirationSeconds": 600}}]}}
    await core.create_namespaced_pod(namespace, pod(
        "vault-client", vk_node.name,
        container={"volumeMounts": [{"name": "vault-token", "mountPath": "/var/run/vault"}]},
        volumes=[token_volume]))
    await eventually(lambda: running(core, namespace, "vault-client"), 60, "Running", vk_node)

    async def warned() -> Any:
        return (await reasons(core, namespace, "vault-client")).get("TokenExpiresBeforePod")

    event = await eventually(warned, 30, "TokenExpiresBeforePod event", vk_node)
    assert event.type == "Warning"
    assert "vault-token" in event.message and "600s" in event.message
    req = request_for(emulator_realtime, "vault-client")
    volumes = {req[k]: k.rsplit(".", 1)[0] for k in req
               if k.startswith("Volume.") and k.endswith(".Name")}
    assert req[volumes["vault-token"] + ".Type"] == "ConfigFileVolume"
    # The kubelet-style default token volume (if the API server adds one) is extended by the
    # API server and draws no such warning: only the short one is named.
    assert "kube-api-access" not in event.message
