"""Kubelet semantics in translation: missing-reference reasons, DNS, startup probes,
native sidecars, all reported from the one translation pass."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes_asyncio.client import (
    V1ConfigMapEnvSource,
    V1ConfigMapKeySelector,
    V1ConfigMapVolumeSource,
    V1Container,
    V1EnvFromSource,
    V1EnvVar,
    V1EnvVarSource,
    V1ExecAction,
    V1KeyToPath,
    V1PersistentVolumeClaimVolumeSource,
    V1PodDNSConfig,
    V1PodDNSConfigOption,
    V1Probe,
    V1ProjectedVolumeSource,
    V1SecretEnvSource,
    V1SecretKeySelector,
    V1SecretVolumeSource,
    V1ServiceAccountTokenProjection,
    V1Volume,
    V1VolumeProjection,
)

from tests.unit.test_cloud_translate import ctx, pod
from vk_eci.cloud.api.errors import InvalidInput, MissingDependency
from vk_eci.cloud.translation.pod import translate
from vk_eci.provider import ClaimData


def _env(name: str, **src: Any) -> V1Container:
    return V1Container(name="a", image="x:1",
                       env=[V1EnvVar(name="X", value_from=V1EnvVarSource(**src))])


def _from(**src: Any) -> V1Container:
    return V1Container(name="a", image="x:1", env_from=[V1EnvFromSource(**src)])


MISSING: list[tuple[Any, str]] = [
    (pod([_env("X", secret_key_ref=V1SecretKeySelector(name="nope", key="k"))]),
     "MandatorySecretNotFound"),
    (pod([_env("X", secret_key_ref=V1SecretKeySelector(name="db", key="nokey"))]),
     "MandatorySecretKeyNotFound"),
    (pod([_env("X", config_map_key_ref=V1ConfigMapKeySelector(name="nope", key="k"))]),
     "MandatoryConfigMapNotFound"),
    (pod([_env("X", config_map_key_ref=V1ConfigMapKeySelector(name="app", key="nokey"))]),
     "MandatoryConfigMapKeyNotFound"),
    (pod([_from(secret_ref=V1SecretEnvSource(name="nope"))]), "MandatorySecretNotFound"),
    (pod([_from(config_map_ref=V1ConfigMapEnvSource(name="nope"))]),
     "MandatoryConfigMapNotFound"),
    (pod(volumes=[V1Volume(name="v", secret=V1SecretVolumeSource(secret_name="nope"))]),
     "MandatorySecretNotFound"),
    (pod(volumes=[V1Volume(name="v", config_map=V1ConfigMapVolumeSource(
        name="app", items=[V1KeyToPath(key="nokey", path="p")]))]),
     "MandatoryConfigMapKeyNotFound"),
]


@pytest.mark.parametrize(("p", "reason"), MISSING, ids=[m[1] + str(i) for i, m in
                                                         enumerate(MISSING)])
def test_mandatory_missing_reference_carries_the_kubelet_reason(p: Any, reason: str) -> None:
    with pytest.raises(MissingDependency) as info:
        translate(p, ctx())
    assert info.value.event == reason


def test_unreadable_object_is_failed_to_read() -> None:
    p = pod([_from(secret_ref=V1SecretEnvSource(name="locked"))])
    with pytest.raises(MissingDependency) as info:
        translate(p, ctx(unreadable_secrets=frozenset({"locked"})))
    assert info.value.event == "FailedToReadMandatorySecret"
    assert "could not be read" in str(info.value)
    p = pod([_from(config_map_ref=V1ConfigMapEnvSource(name="locked", optional=True))])
    warnings = translate(p, ctx(unreadable_config_maps=frozenset({"locked"}))).warnings
    assert "FailedToReadOptionalConfigMap" in [w.reason for w in warnings]


def test_optional_missing_references_are_skipped_with_a_warning_each() -> None:
    p = pod([V1Container(name="a", image="x:1", env=[
        V1EnvVar(name="A", value_from=V1EnvVarSource(config_map_key_ref=V1ConfigMapKeySelector(
            name="nope", key="k", optional=True))),
        V1EnvVar(name="B", value_from=V1EnvVarSource(secret_key_ref=V1SecretKeySelector(
            name="db", key="nokey", optional=True)))],
        env_from=[V1EnvFromSource(secret_ref=V1SecretEnvSource(name="nope", optional=True))])],
        volumes=[V1Volume(name="v", config_map=V1ConfigMapVolumeSource(
            name="app", optional=True, items=[V1KeyToPath(key="nokey", path="p")]))])
    result = translate(p, ctx())
    reasons = [w.reason for w in result.warnings]
    assert reasons.count("OptionalConfigMapNotFound") == 1
    assert reasons.count("OptionalSecretKeyNotFound") == 1
    assert reasons.count("OptionalSecretNotFound") == 1
    assert reasons.count("OptionalConfigMapKeyNotFound") == 1
    env = {e.key for e in result.request.container[0].environment_var or []}
    assert "A" not in env and "B" not in env
    assert all("hunter2" not in w.message for w in result.warnings)


def _dns(p: Any, **kw: Any) -> tuple[Any, Any, list[str]]:
    result = translate(p, ctx(**kw))
    req = result.request
    cfg = req.dns_config.to_map() if req.dns_config is not None else None
    return req.dns_policy, cfg, [w.reason for w in result.warnings]


CLUSTER = {"NameServer": ["10.96.0.10"],
           "Search": ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"],
           "Option": [{"Name": "ndots", "Value": "5"}]}


@pytest.mark.parametrize("policy", [None, "ClusterFirst", "ClusterFirstWithHostNet"])
def test_cluster_first_is_built_as_the_kubelet_does(policy: str | None) -> None:
    assert _dns(pod(dns_policy=policy), cluster_dns=("10.96.0.10",))[:2] == ("None", CLUSTER)


def test_cluster_first_merges_the_pod_dns_config_and_honours_the_domain() -> None:
    cfg = V1PodDNSConfig(nameservers=["1.1.1.1", "10.96.0.10"], searches=["corp.example"],
                         options=[V1PodDNSConfigOption(name="ndots", value="2"),
                                  V1PodDNSConfigOption(name="edns0")])
    policy, sent, _ = _dns(pod(dns_config=cfg), cluster_dns=("10.96.0.10",),
                           cluster_domain="k8s.test")
    assert policy == "None"
    assert sent == {"NameServer": ["10.96.0.10", "1.1.1.1"],
                    "Search": ["shop.svc.k8s.test", "svc.k8s.test", "k8s.test", "corp.example"],
                    "Option": [{"Name": "ndots", "Value": "2"}, {"Name": "edns0"}]}


def test_cluster_first_without_cluster_dns_falls_back_to_default_with_a_warning() -> None:
    policy, sent, reasons = _dns(pod())
    assert (policy, sent) == ("Default", None)
    assert "MissingClusterDNS" in reasons


def test_default_and_none_policies() -> None:
    assert _dns(pod(dns_policy="Default"), cluster_dns=("10.96.0.10",)) == ("Default", None, [])
    cfg = V1PodDNSConfig(nameservers=["8.8.8.8"])
    policy, sent, _ = _dns(pod(dns_policy="None", dns_config=cfg), cluster_dns=("10.96.0.10",))
    assert (policy, sent["NameServer"], sent.get("Search"), sent.get("Option")) == (
        "None", ["8.8.8.8"], None, [])
    with pytest.raises(InvalidInput, match="dnsPolicy"):
        translate(pod(dns_policy="Bogus"), ctx())


def _probe(delay: int, period: int | None = None, failures: int | None = None) -> V1Probe:
    return V1Probe(_exec=V1ExecAction(command=["true"]), initial_delay_seconds=delay,
                   period_seconds=period, failure_threshold=failures)


def test_startup_probe_is_folded_into_the_liveness_delay() -> None:
    c = V1Container(name="app", image="x:1", liveness_probe=_probe(5),
                    startup_probe=_probe(10, period=5, failures=30))
    result = translate(pod([c]), ctx())
    assert result.request.container[0].liveness_probe.initial_delay_seconds == 160
    [warning] = [w for w in result.warnings if w.reason == "StartupProbeNotSupported"]
    assert "160s" in warning.message
    # A liveness delay already longer than the startup window is kept.
    c = V1Container(name="app", image="x:1", liveness_probe=_probe(500),
                    startup_probe=_probe(0))
    assert translate(pod([c]), ctx()).request.container[0].liveness_probe \
        .initial_delay_seconds == 500


def test_startup_probe_without_liveness_is_dropped_with_a_warning() -> None:
    c = V1Container(name="app", image="x:1", startup_probe=_probe(0))
    result = translate(pod([c]), ctx())
    assert result.request.container[0].liveness_probe is None
    assert "StartupProbeNotSupported" in [w.reason for w in result.warnings]


def test_native_sidecars_become_app_containers_first() -> None:
    inits = [V1Container(name="setup", image="busybox"),
             V1Container(name="proxy", image="envoy:1", restart_policy="Always"),
             V1Container(name="migrate", image="busybox")]
    result = translate(pod([V1Container(name="app", image="x:1")], init_containers=inits),
                       ctx())
    req = result.request
    assert [c.name for c in req.container] == ["proxy", "app"]
    assert [c.name for c in req.init_container] == ["setup", "migrate"]
    [order] = [w for w in result.warnings if w.reason == "SidecarStartOrder"]
    assert "migrate" in order.message and "setup" not in order.message
    assert "SidecarNotStopped" not in [w.reason for w in result.warnings]
    job = translate(pod([V1Container(name="app", image="x:1")], restart_policy="Never",
                        init_containers=inits[1:2]), ctx())
    reasons = [w.reason for w in job.warnings]
    assert "SidecarNotStopped" in reasons and "SidecarStartOrder" not in reasons
    assert job.request.init_container is None


def _claim_pod(read_only: bool = False) -> Any:
    return pod(volumes=[V1Volume(name="data", persistent_volume_claim=(
        V1PersistentVolumeClaimVolumeSource(claim_name="data-web-0", read_only=read_only)))])


def _volume(claim: ClaimData, read_only: bool = False) -> dict[str, Any]:
    req = translate(_claim_pod(read_only), ctx(claims={"data-web-0": claim})).request
    out: dict[str, Any] = req.volume[0].to_map()
    return out


def test_bound_claims_become_the_eci_volume_of_their_pv_source() -> None:
    nfs = ClaimData("Bound", "pv-1", "nfs", {"server": "10.0.0.5", "path": "/exports/a"})
    assert _volume(nfs, read_only=True) == {"Name": "data", "Type": "NFSVolume", "NFSVolume": {
        "Server": "10.0.0.5", "Path": "/exports/a", "ReadOnly": True}}
    nas = ClaimData("Bound", "pv-2", "csi", {
        "driver": "nasplugin.csi.alibabacloud.com", "volumeHandle": "pv-2",
        "server": "0cd8b4a576-xyz.cn-hangzhou.nas.aliyuncs.com", "path": "/k8s"})
    assert _volume(nas)["NFSVolume"] == {
        "Server": "0cd8b4a576-xyz.cn-hangzhou.nas.aliyuncs.com", "Path": "/k8s",
        "ReadOnly": False}
    disk = ClaimData("Bound", "pv-3", "csi", {
        "driver": "diskplugin.csi.alibabacloud.com", "volumeHandle": "d-bp1abc",
        "fsType": "xfs"}, capacity="20Gi")
    assert _volume(disk) == {"Name": "data", "Type": "DiskVolume", "DiskVolume": {
        "DiskId": "d-bp1abc", "FsType": "xfs", "DiskSize": 20}}
    odd = ClaimData("Bound", "pv-4", "csi", {
        "driver": "diskplugin.csi.alibabacloud.com", "volumeHandle": "d-1"}, capacity="1500Mi")
    assert _volume(odd)["DiskVolume"] == {"DiskId": "d-1", "FsType": "ext4", "DiskSize": 2}


def test_absent_unbound_and_unmountable_claims_are_named() -> None:
    with pytest.raises(MissingDependency) as missing:
        translate(_claim_pod(), ctx())
    assert missing.value.event == "ClaimNotFound" and "data-web-0" in str(missing.value)
    with pytest.raises(MissingDependency) as unbound:
        translate(_claim_pod(), ctx(claims={"data-web-0": ClaimData("Pending")}))
    assert unbound.value.event == "ClaimNotBound" and "Pending" in str(unbound.value)
    for claim in (ClaimData("Bound", "pv-h", "hostPath"),
                  ClaimData("Bound", "pv-e", "csi", {"driver": "ebs.csi.aws.com"})):
        with pytest.raises(InvalidInput) as refused:
            translate(_claim_pod(), ctx(claims={"data-web-0": claim}))
        assert refused.value.event == "UnsupportedPersistentVolume"
        assert claim.volume_name in str(refused.value)


def _jwt(lifetime: int) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'iat': 1000, 'exp': 1000 + lifetime})}.sig"


def _token_pod(deadline: int | None) -> Any:
    return pod(active_deadline_seconds=deadline, volumes=[V1Volume(
        name="vault", projected=V1ProjectedVolumeSource(sources=[V1VolumeProjection(
            service_account_token=V1ServiceAccountTokenProjection(
                path="token", audience="vault", expiration_seconds=600))]))])


def _token_warnings(token: str, deadline: int | None) -> list[str]:
    result = translate(_token_pod(deadline), ctx(service_account_tokens={("vault", 600): token}))
    return [w.message for w in result.warnings if w.reason == "TokenExpiresBeforePod"]


def test_token_shorter_than_the_pod_may_live_is_warned_never_echoed() -> None:
    short = _jwt(600)
    [message] = _token_warnings(short, None)
    assert "600s" in message and "volume vault" in message and short not in message
    [message] = _token_warnings(short, 3600)
    assert "activeDeadlineSeconds (3600s)" in message
    assert _token_warnings(short, 300) == []  # the pod ends before the token
    assert _token_warnings(_jwt(365 * 86400), None) == []  # the API server extended it
    # Not a JWT: the requested expirationSeconds is what is known.
    assert len(_token_warnings("opaque-token", None)) == 1
