"""vk_eci.cloud.translation.pod: Pod → CreateContainerGroupRequest, table-driven on the wire form.

Each case builds a pod, translates it and checks fields of ``request.to_map()`` (the PascalCase
form the SDK sends), so the assertions read like ECI's API documentation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes_asyncio.client import (
    V1Capabilities,
    V1ConfigMapEnvSource,
    V1ConfigMapKeySelector,
    V1ConfigMapProjection,
    V1ConfigMapVolumeSource,
    V1Container,
    V1ContainerPort,
    V1DownwardAPIVolumeFile,
    V1DownwardAPIVolumeSource,
    V1EmptyDirVolumeSource,
    V1EnvFromSource,
    V1EnvVar,
    V1EnvVarSource,
    V1ExecAction,
    V1HostAlias,
    V1HostPathVolumeSource,
    V1HTTPGetAction,
    V1KeyToPath,
    V1LocalObjectReference,
    V1NFSVolumeSource,
    V1ObjectFieldSelector,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodDNSConfig,
    V1PodDNSConfigOption,
    V1PodSecurityContext,
    V1PodSpec,
    V1Probe,
    V1ProjectedVolumeSource,
    V1ResourceFieldSelector,
    V1ResourceRequirements,
    V1SecretKeySelector,
    V1SecretVolumeSource,
    V1SecurityContext,
    V1ServiceAccountTokenProjection,
    V1TCPSocketAction,
    V1Volume,
    V1VolumeMount,
    V1VolumeProjection,
)

from vk_eci.cloud.api.errors import InvalidInput, MissingDependency
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.translation.context import CacheDecision, TranslateContext, references
from vk_eci.cloud.translation.pod import pod_to_request, translate
from vk_eci.cloud.translation.security import unenforced_security
from vk_eci.provider import ConfigMapData, SecretData

SECRET_PASSWORD = "s3cr3t-pa55"


def _dockerjson(auths: dict[str, Any]) -> SecretData:
    return SecretData("kubernetes.io/dockerconfigjson",
                      {".dockerconfigjson": json.dumps({"auths": auths}).encode()})


SECRETS = {
    "db": SecretData("Opaque", {"password": b"hunter2", "user": b"admin"}),
    "tls": SecretData("kubernetes.io/tls", {"tls.crt": b"CERT", "tls.key": b"KEY"}),
    "regcred": _dockerjson({"https://registry.cn-hangzhou.aliyuncs.com/v1/": {
        "auth": base64.b64encode(f"alice:{SECRET_PASSWORD}".encode()).decode()}}),
    "regcred2": SecretData("kubernetes.io/dockercfg", {".dockercfg": json.dumps(
        {"docker.io": {"username": "bob", "password": SECRET_PASSWORD}}).encode()}),
    "badcred": SecretData("kubernetes.io/dockerconfigjson",
                          {".dockerconfigjson": f'{{"auths": "{SECRET_PASSWORD}'.encode()}),
    "badauth": _dockerjson({"r.io": {"auth": "!!notbase64" + SECRET_PASSWORD}}),
}
CONFIG_MAPS = {"app": ConfigMapData({"LOG_LEVEL": "debug", "mode": "fast", "bad key": "x"}),
               "kube-root-ca.crt": ConfigMapData({"ca.crt": "CA"})}


def ctx(**kw: Any) -> TranslateContext:
    base: dict[str, Any] = dict(
        placement=Placement(region_id="cn-hangzhou", zone_id="cn-hangzhou-k",
                            vswitch_ids=("vsw-a", "vsw-b"), security_group_id="sg-1"),
        cluster_name="prod", node_name="virtual-kubelet",
        secrets=SECRETS, config_maps=CONFIG_MAPS,
        service_env={"WEB_SERVICE_HOST": "10.0.0.1", "LOG_LEVEL": "info"},
        service_account_tokens={(None, 3607): "TOKEN"})
    base.update(kw)
    return TranslateContext(**base)


def pod(containers: list[V1Container] | None = None, **spec: Any) -> V1Pod:
    meta = spec.pop("metadata", None) or V1ObjectMeta(
        name="web-1", namespace="shop", uid="uid-123", labels={"app": "web"},
        annotations={"team": "a"})
    return V1Pod(metadata=meta, spec=V1PodSpec(
        node_name="virtual-kubelet", service_account_name="builder",
        containers=containers or [V1Container(name="app", image="nginx:1.25")], **spec))


def wire(p: V1Pod, c: TranslateContext | None = None) -> dict[str, Any]:
    result: dict[str, Any] = pod_to_request(p, c or ctx()).to_map()
    return result


def env_of(w: dict[str, Any], index: int = 0) -> dict[str, Any]:
    out = {}
    for e in w["Container"][index].get("EnvironmentVar", []):
        out[e["Key"]] = e.get("Value", ("FieldRef", e.get("FieldRef", {}).get("FieldPath")))
    return out


def files_of(w: dict[str, Any], volume: str) -> dict[str, str]:
    vol = next(v for v in w["Volume"] if v["Name"] == volume)
    assert vol["Type"] == "ConfigFileVolume"
    return {f["Path"]: base64.b64decode(f["Content"]).decode()
            for f in vol["ConfigFileVolume"]["ConfigFileToPath"]}


Check = Callable[[dict[str, Any]], None]

CASES: list[tuple[str, V1Pod, Check]] = [
    ("group fields", pod(restart_policy="OnFailure", termination_grace_period_seconds=45,
                         active_deadline_seconds=600),
     lambda w: (
         w["RegionId"] == "cn-hangzhou" and w["ZoneId"] == "cn-hangzhou-k"
         and w["VSwitchId"] == "vsw-a,vsw-b" and w["SecurityGroupId"] == "sg-1"
         and w["ContainerGroupName"].startswith("shop-web-1-") and w["ClientToken"] == "uid-123"
         and w["RestartPolicy"] == "OnFailure" and w["TerminationGracePeriodSeconds"] == 45
         and w["ActiveDeadlineSeconds"] == 600 and w["Cpu"] == 2.0 and w["Memory"] == 4.0)
     or pytest.fail(str(w))),
    ("tags", pod(), lambda w: _eq({t["Key"]: t["Value"] for t in w["Tag"]}, {
        "vk-eci.io/cluster": "prod", "vk-eci.io/node": "virtual-kubelet",
        "k8s.aliyun.com/namespace": "shop", "k8s.aliyun.com/pod-name": "web-1",
        "k8s.aliyun.com/pod-uid": "uid-123"})),
    ("command args workdir ports stdin", pod([V1Container(
        name="app", image="busybox", command=["sh", "-c"], args=["echo $(GREETING) $$HOME"],
        working_dir="/work", stdin=True, tty=True,
        env=[V1EnvVar(name="GREETING", value="hi")],
        ports=[V1ContainerPort(container_port=8080), V1ContainerPort(container_port=53,
                                                                     protocol="UDP")])]),
     lambda w: _eq({k: w["Container"][0][k] for k in ("Command", "Arg", "WorkingDir", "Stdin",
                                                       "Tty", "Port", "ImagePullPolicy")},
                   {"Command": ["sh", "-c"], "Arg": ["echo hi $HOME"], "WorkingDir": "/work",
                    "Stdin": True, "Tty": True, "ImagePullPolicy": "Always",
                    "Port": [{"Port": 8080, "Protocol": "TCP"},
                             {"Port": 53, "Protocol": "UDP"}]})),
    ("env: literals, refs, service env, envFrom and precedence", pod([V1Container(
        name="app", image="nginx:1.25",
        env_from=[V1EnvFromSource(config_map_ref=V1ConfigMapEnvSource(name="app"))],
        env=[V1EnvVar(name="A", value="1"), V1EnvVar(name="B", value="$(A)-$(MISSING)"),
             V1EnvVar(name="PW", value_from=V1EnvVarSource(
                 secret_key_ref=V1SecretKeySelector(name="db", key="password"))),
             V1EnvVar(name="MODE", value_from=V1EnvVarSource(
                 config_map_key_ref=V1ConfigMapKeySelector(name="app", key="mode"))),
             V1EnvVar(name="OPT", value_from=V1EnvVarSource(
                 secret_key_ref=V1SecretKeySelector(name="nope", key="x", optional=True))),
             V1EnvVar(name="POD", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="metadata.name"))),
             V1EnvVar(name="NS", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="metadata.namespace"))),
             V1EnvVar(name="UID", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="metadata.uid"))),
             V1EnvVar(name="APP", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="metadata.labels['app']"))),
             V1EnvVar(name="NODE", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="spec.nodeName"))),
             V1EnvVar(name="SA", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="spec.serviceAccountName"))),
             V1EnvVar(name="IP", value_from=V1EnvVarSource(
                 field_ref=V1ObjectFieldSelector(field_path="status.podIP"))),
             V1EnvVar(name="CPU", value_from=V1EnvVarSource(
                 resource_field_ref=V1ResourceFieldSelector(resource="limits.cpu"))),
             V1EnvVar(name="MEM_MI", value_from=V1EnvVarSource(
                 resource_field_ref=V1ResourceFieldSelector(resource="limits.memory",
                                                            divisor="1Mi")))],
        resources=V1ResourceRequirements(limits={"cpu": "1500m", "memory": "1Gi"}))]),
     lambda w: _eq(env_of(w), {
         "WEB_SERVICE_HOST": "10.0.0.1", "LOG_LEVEL": "debug", "mode": "fast", "A": "1",
         "B": "1-$(MISSING)", "PW": "hunter2", "MODE": "fast", "POD": "web-1", "NS": "shop",
         "UID": "uid-123", "APP": "web", "NODE": "virtual-kubelet", "SA": "builder",
         "IP": ("FieldRef", "status.podIP"), "CPU": "2", "MEM_MI": "1024"})),
    ("enableServiceLinks false drops service env", pod(enable_service_links=False),
     lambda w: _eq(env_of(w), {})),
    ("resources per container and group rounding", pod([
        V1Container(name="a", image="x:1", resources=V1ResourceRequirements(
            requests={"cpu": "250m", "memory": "300Mi"})),
        V1Container(name="b", image="x:1", resources=V1ResourceRequirements(
            limits={"cpu": "1", "memory": "1Gi"}))]),
     lambda w: _eq((w["Container"][0]["Cpu"], w["Container"][1]["Cpu"],
                    w["Container"][1]["Memory"], w["Cpu"], w["Memory"]),
                   (0.25, 1.0, 1.0, 2.0, 2.0))),
    ("eci-use-specs annotation", pod(metadata=V1ObjectMeta(
        name="p", namespace="d", uid="u", annotations={
            "k8s.aliyun.com/eci-use-specs": "ecs.c6.large,2-4Gi"})),
     lambda w: _eq((w.get("InstanceType"), w.get("Cpu"), w.get("Memory")),
                   ("ecs.c6.large,2-4Gi", None, None))),
    ("probes, security context, mounts", pod([V1Container(
        name="app", image="nginx@sha256:" + "a" * 64,
        ports=[V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=V1Probe(http_get=V1HTTPGetAction(path="/ready", port="http"),
                                period_seconds=3, failure_threshold=2),
        liveness_probe=V1Probe(tcp_socket=V1TCPSocketAction(port=8080),
                               initial_delay_seconds=5),
        security_context=V1SecurityContext(run_as_user=1000, read_only_root_filesystem=True,
                                           capabilities=V1Capabilities(add=["NET_ADMIN"])),
        volume_mounts=[V1VolumeMount(name="data", mount_path="/data", sub_path="x",
                                     read_only=True)])],
        volumes=[V1Volume(name="data", empty_dir=V1EmptyDirVolumeSource(medium="Memory",
                                                                        size_limit="64Mi"))]),
     lambda w: _eq({k: w["Container"][0].get(k) for k in (
         "ReadinessProbe", "LivenessProbe", "SecurityContext", "VolumeMount",
         "ImagePullPolicy")}, {
         "ReadinessProbe": {"HttpGet": {"Path": "/ready", "Port": 8080, "Scheme": "HTTP"},
                            "PeriodSeconds": 3, "FailureThreshold": 2},
         "LivenessProbe": {"TcpSocket": {"Port": 8080}, "InitialDelaySeconds": 5},
         "SecurityContext": {"RunAsUser": 1000, "ReadOnlyRootFilesystem": True,
                             "Capability": {"Add": ["NET_ADMIN"]}},
         "VolumeMount": [{"Name": "data", "MountPath": "/data", "SubPath": "x",
                          "ReadOnly": True}],
         "ImagePullPolicy": "IfNotPresent"})
     and _eq(w["Volume"], [{"Name": "data", "Type": "EmptyDirVolume", "EmptyDirVolume": {
         "Medium": "Memory", "SizeLimit": "64Mi"}}])),
    ("exec probe and pod-level runAsUser", pod([V1Container(
        name="app", image="nginx:1", readiness_probe=V1Probe(
            _exec=V1ExecAction(command=["cat", "/ok"])))],
        security_context=V1PodSecurityContext(run_as_user=42)),
     lambda w: _eq((w["Container"][0]["ReadinessProbe"]["Exec"]["Command"],
                    w["Container"][0]["SecurityContext"]["RunAsUser"]), (["cat", "/ok"], 42))),
    ("init containers", pod(init_containers=[V1Container(
        name="init", image="busybox:1", command=["true"],
        resources=V1ResourceRequirements(requests={"cpu": "4"}))]),
     lambda w: _eq((w["InitContainer"][0]["Name"], w["InitContainer"][0]["Command"],
                    w["InitContainer"][0]["ImagePullPolicy"], w["Cpu"]),
                   ("init", ["true"], "IfNotPresent", 4.0))),
    ("volumes: secret, configMap, nfs, downwardAPI, projected", pod(volumes=[
        V1Volume(name="s", secret=V1SecretVolumeSource(secret_name="tls", default_mode=0o400)),
        V1Volume(name="cm", config_map=V1ConfigMapVolumeSource(
            name="app", items=[V1KeyToPath(key="mode", path="conf/mode")])),
        V1Volume(name="n", nfs=V1NFSVolumeSource(server="nas.local", path="/share",
                                                 read_only=True)),
        V1Volume(name="d", downward_api=V1DownwardAPIVolumeSource(items=[
            V1DownwardAPIVolumeFile(path="labels", field_ref=V1ObjectFieldSelector(
                field_path="metadata.labels")),
            V1DownwardAPIVolumeFile(path="name", field_ref=V1ObjectFieldSelector(
                field_path="metadata.name"))])),
        V1Volume(name="kube-api-access", projected=V1ProjectedVolumeSource(sources=[
            V1VolumeProjection(service_account_token=V1ServiceAccountTokenProjection(
                path="token", expiration_seconds=3607)),
            V1VolumeProjection(config_map=V1ConfigMapProjection(
                name="kube-root-ca.crt", items=[V1KeyToPath(key="ca.crt", path="ca.crt")])),
            V1VolumeProjection(downward_api=V1DownwardAPIVolumeSource(items=[
                V1DownwardAPIVolumeFile(path="namespace", field_ref=V1ObjectFieldSelector(
                    field_path="metadata.namespace"))]))]))]),
     lambda w: _eq(files_of(w, "s"), {"tls.crt": "CERT", "tls.key": "KEY"})
     and _eq(next(v for v in w["Volume"] if v["Name"] == "s")["ConfigFileVolume"][
         "DefaultMode"], 0o400)
     and _eq(files_of(w, "cm"), {"conf/mode": "fast"})
     and _eq(next(v for v in w["Volume"] if v["Name"] == "n"), {
         "Name": "n", "Type": "NFSVolume",
         "NFSVolume": {"Server": "nas.local", "Path": "/share", "ReadOnly": True}})
     and _eq(files_of(w, "d"), {"labels": 'app="web"', "name": "web-1"})
     and _eq(files_of(w, "kube-api-access"), {"token": "TOKEN", "ca.crt": "CA",
                                              "namespace": "shop"})),
    ("image pull secrets", pod(image_pull_secrets=[
        V1LocalObjectReference(name="regcred"), V1LocalObjectReference(name="regcred2"),
        V1LocalObjectReference(name="absent")]),
     lambda w: _eq(w["ImageRegistryCredential"], [
         {"Server": "registry.cn-hangzhou.aliyuncs.com", "UserName": "alice",
          "Password": SECRET_PASSWORD},
         {"Server": "docker.io", "UserName": "bob", "Password": SECRET_PASSWORD}])),
    ("dns and host aliases", pod(
        dns_policy="None", dns_config=V1PodDNSConfig(
            nameservers=["1.1.1.1"], searches=["svc.local"],
            options=[V1PodDNSConfigOption(name="ndots", value="2")]),
        host_aliases=[V1HostAlias(ip="10.1.1.1", hostnames=["db", "db.local"])]),
     lambda w: _eq((w["DnsPolicy"], w["DnsConfig"], w["HostAliase"]), (
         "None", {"NameServer": ["1.1.1.1"], "Search": ["svc.local"],
                  "Option": [{"Name": "ndots", "Value": "2"}]},
         [{"Ip": "10.1.1.1", "Hostname": ["db", "db.local"]}]))),
]


def _eq(actual: Any, expected: Any) -> bool:
    assert actual == expected
    return True


@pytest.mark.parametrize(("case", "p", "check"), CASES, ids=[c[0] for c in CASES])
def test_translate(case: str, p: V1Pod, check: Check) -> None:
    check(wire(p))


def test_cache_decision_is_applied() -> None:
    p = pod([V1Container(name="app", image="nginx"), V1Container(name="side", image="x:1")])
    explicit = wire(p, ctx(cache=CacheDecision(image_snapshot_id="imc-123",
                                               pull_policy_overrides={"app": "IfNotPresent"})))
    assert explicit["ImageSnapshotId"] == "imc-123"
    assert "AutoMatchImageCache" not in explicit
    assert explicit["Container"][0]["ImagePullPolicy"] == "IfNotPresent"
    assert explicit["Container"][1]["ImagePullPolicy"] == "IfNotPresent"
    auto = wire(p, ctx(cache=CacheDecision(auto_match_image_cache=True)))
    assert auto["AutoMatchImageCache"] is True and "ImageSnapshotId" not in auto
    assert auto["Container"][0]["ImagePullPolicy"] == "Always"
    plain = wire(p)
    assert "ImageSnapshotId" not in plain and "AutoMatchImageCache" not in plain


REFUSED: list[tuple[str, V1Pod, str]] = [
    ("daemonset", pod(metadata=V1ObjectMeta(name="p", namespace="d", uid="u", owner_references=[
        V1OwnerReference(api_version="apps/v1", kind="DaemonSet", name="fluentd", uid="x")])),
     "DaemonSet fluentd"),
    ("hostNetwork", pod(host_network=True), "hostNetwork"),
    ("hostPID", pod(host_pid=True), "hostPID"),
    ("hostIPC", pod(host_ipc=True), "hostIPC"),
    ("hostPath", pod(volumes=[V1Volume(name="logs", host_path=V1HostPathVolumeSource(
        path="/var/log"))]), "volume logs (hostPath)"),
    ("hostPath under a bucket, system path", pod(
        metadata=V1ObjectMeta(name="p", namespace="d", uid="u", annotations={
            "k8s.aliyun.com/eci-data-cache-bucket": "default"}),
        volumes=[V1Volume(name="etc", host_path=V1HostPathVolumeSource(path="/etc/ssl"))]),
     "volume etc (hostPath)"),
    ("privileged", pod([V1Container(name="root", image="x:1", security_context=V1SecurityContext(
        privileged=True))]), "container root"),
    ("too large", pod([V1Container(name="big", image="x:1", resources=V1ResourceRequirements(
        requests={"cpu": "100"}))]), "pod size"),
    ("mount without volume", pod([V1Container(name="app", image="x:1", volume_mounts=[
        V1VolumeMount(name="ghost", mount_path="/g")])]), "volume mount ghost"),
    ("bad pull secret json", pod(image_pull_secrets=[V1LocalObjectReference(name="badcred")]),
     "image pull secret badcred"),
    ("bad pull secret auth", pod(image_pull_secrets=[V1LocalObjectReference(name="badauth")]),
     "image pull secret badauth"),
    ("bad use-specs", pod(metadata=V1ObjectMeta(name="p", namespace="d", uid="u", annotations={
        "k8s.aliyun.com/eci-use-specs": "huge"})), "eci-use-specs"),
]


@pytest.mark.parametrize(("case", "p", "thing"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_pods_name_the_thing(case: str, p: V1Pod, thing: str) -> None:
    with pytest.raises(InvalidInput) as info:
        pod_to_request(p, ctx())
    assert thing in str(info.value)
    assert SECRET_PASSWORD not in str(info.value)
    assert info.value.reason


@pytest.mark.parametrize(("p", "thing"), [
    (pod([V1Container(name="a", image="x:1", env=[V1EnvVar(name="X", value_from=V1EnvVarSource(
        secret_key_ref=V1SecretKeySelector(name="missing", key="k")))])]), "secret missing"),
    (pod([V1Container(name="a", image="x:1", env=[V1EnvVar(name="X", value_from=V1EnvVarSource(
        config_map_key_ref=V1ConfigMapKeySelector(name="app", key="nokey")))])]),
     "key nokey of config map app"),
    (pod(volumes=[V1Volume(name="v", config_map=V1ConfigMapVolumeSource(name="gone"))]),
     "config map gone"),
])
def test_missing_references_are_retryable(p: V1Pod, thing: str) -> None:
    with pytest.raises(MissingDependency) as info:
        pod_to_request(p, ctx())
    assert thing in str(info.value)


def test_references_lists_what_to_fetch() -> None:
    p = pod([V1Container(name="a", image="x:1", env=[V1EnvVar(name="X", value_from=V1EnvVarSource(
        secret_key_ref=V1SecretKeySelector(name="db", key="k")))], env_from=[V1EnvFromSource(
            config_map_ref=V1ConfigMapEnvSource(name="app"))])],
        image_pull_secrets=[V1LocalObjectReference(name="regcred")],
        volumes=[V1Volume(name="t", projected=V1ProjectedVolumeSource(sources=[
            V1VolumeProjection(service_account_token=V1ServiceAccountTokenProjection(
                path="token", audience="vault", expiration_seconds=600))]))])
    refs = references(p)
    assert refs.secrets == {"db", "regcred"}
    assert refs.config_maps == {"app"}
    assert refs.tokens == {("vault", 600)}
    assert refs.service_links is True


def test_security_settings_eci_cannot_apply_are_listed_not_dropped_unsaid() -> None:
    hardened = V1SecurityContext(allow_privilege_escalation=False, run_as_non_root=True,
                                 capabilities=V1Capabilities(drop=["ALL"], add=["NET_ADMIN"]))
    p = pod([V1Container(name="app", image="nginx", security_context=hardened)],
            init_containers=[V1Container(name="init", image="busybox",
                                         security_context=V1SecurityContext(run_as_non_root=True))],
            security_context=V1PodSecurityContext(fs_group=2000, run_as_user=1000))
    assert unenforced_security(p) == [
        "pod securityContext.fsGroup",
        "container init securityContext.runAsNonRoot",
        "container app securityContext.capabilities.drop",
    ]
    # allowPrivilegeEscalation=false asks for nothing ECI would not do anyway; what ECI has a
    # field for (runAsUser, capabilities.add, app runAsNonRoot) is sent, not listed.
    assert unenforced_security(pod()) == []
    sent = wire(p)
    assert sent["Container"][0]["SecurityContext"]["Capability"]["Add"] == ["NET_ADMIN"]


def test_env_from_keys_that_are_no_variable_names_are_listed_and_not_sent() -> None:
    c = V1Container(name="app", image="nginx",
                    env_from=[V1EnvFromSource(config_map_ref=V1ConfigMapEnvSource(name="app"))])
    p = pod([c])
    warned = [w for w in translate(p, ctx()).warnings
              if w.reason == "InvalidEnvironmentVariableNames"]
    assert [w.message for w in warned] == [
        "container app: skipped invalid environment variable names: bad key from config map app"]
    sent = {e["Key"] for e in wire(p)["Container"][0]["EnvironmentVar"]}
    assert {"LOG_LEVEL", "mode"} <= sent and "bad key" not in sent
    assert not [w for w in translate(pod(), ctx()).warnings
                if w.reason == "InvalidEnvironmentVariableNames"]


def test_data_cache_host_path_becomes_a_host_path_volume() -> None:
    p = pod(metadata=V1ObjectMeta(name="p", namespace="d", uid="u", annotations={
        "k8s.aliyun.com/eci-data-cache-bucket": "default"}),
        volumes=[V1Volume(name="model", host_path=V1HostPathVolumeSource(path="/model/ms/"))])
    out = wire(p)
    assert out["DataCacheBucket"] == "default"
    assert out["Volume"][0]["Type"] == "HostPathVolume"
    assert out["Volume"][0]["HostPathVolume"]["Path"] == "/model/ms/"
