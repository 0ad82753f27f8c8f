"""The Helm chart, rendered by a real helm and checked by a real API server.

- ``helm lint`` (strict) with the default and with non-default values;
- every rendered manifest passes ``kubectl apply --dry-run=server --validate=strict`` against
  the local control plane (the API server's OpenAPI schemas and admission); the kinds of the
  Prometheus operator (ServiceMonitor, PrometheusRule) are not installed there, so their content
  is checked instead (rules with promtool, selectors against the Service);
- the Deployment's flags and environment parse, through :mod:`vk_eci.config` itself, to exactly
  the Settings the values asked for;
- values.schema.json refuses bad values with messages naming the value;
- installed for real (``helm install``), the ServiceAccount has the permissions the node needs
  and not more (``kubectl auth can-i`` as that ServiceAccount); ``test_chart_node.py`` runs a
  real node with that ServiceAccount's token.

``helm template`` renders for the control plane's Kubernetes version (``--kube-version``): the
chart requires 1.28+, and a helm without a cluster assumes an old default.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from vk_eci import config
from vk_eci.cli import build_parser
from vk_eci.controlplane import build, cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/vk-eci"
RULES = CHART / "files/vk-eci.rules.yaml"
DASHBOARD = CHART / "files/vk-eci-dashboard.json"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
KUBE_VERSION = build.kubernetes_version()
POD_IP = "10.244.1.7"
SA_CA = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")

NON_DEFAULT: dict[str, Any] = {
    "image": {"repository": "registry.cn-hangzhou.aliyuncs.com/acme/vk-eci", "tag": "1.2.3"},
    "node": {
        "name": "vk-hz-h", "clusterName": "prod-1",
        "labels": {"team": "ci", "example.com/pool": "burst"},
        "capacity": {"cpu": "500", "memory": "2Ti", "pods": 2000, "gpu": 16,
                     "ephemeralStorage": "10Ti"},
        "architecture": "arm64", "kubeletPort": 10350, "leaseDuration": 30,
        "leaseRenewInterval": 7.5, "statusInterval": 45, "healthTimeout": 3, "replicas": 1,
    },
    "eci": {"region": "cn-hangzhou", "zone": "cn-hangzhou-h",
            "vswitches": ["vsw-aaa", "vsw-bbb"], "securityGroup": "sg-123",
            "endpoint": "eci-vpc.cn-hangzhou.aliyuncs.com", "protocol": "https",
            "rateLimits": {"CreateContainerGroup": 100, "DescribeContainerLog@interactive": 20}},
    "pods": {"statusSyncInterval": 2.5, "workers": 64, "maxRetries": 20,
             "statusSyncMode": "full", "statusPollInterval": 2, "statusPollFastInterval": 0.5,
             "statusResyncInterval": 90},
    "imageCache": {"controller": False, "autoCreate": False, "resyncInterval": 120,
                   "minRelistAge": 15, "pullPolicy": "warn",
                   "privateRegistries": ["registry.corp.example", "reg.example:5000"],
                   "sharedPullNamespaces": ["registry-creds", "ci"]},
    "logLevel": "debug",
    "credentials": {"mode": "rrsa", "rrsa": {
        "roleArn": "acs:ram::1234567890:role/vk-eci",
        "oidcProviderArn": "acs:ram::1234567890:oidc-provider/ack-rrsa-c123"}},
    "extraEnv": [{"name": "VK_ECI_NODE_IP", "value": "10.1.2.3"}],
    "serviceAccount": {"annotations": {"example.com/owner": "platform"}},
    "metrics": {"address": "0.0.0.0", "port": 9100, "service": {"port": 9100},
                "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
                "dashboard": {"enabled": True}},
    "podAnnotations": {"example.com/scrape": "no"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra",
                     "effect": "NoSchedule"}],
    "priorityClassName": "system-cluster-critical",
    "clusterIP": {"kubeProxyImage": "registry.example/k8s/kube-proxy:v1.36.3",
                  "apiServer": "https://10.0.0.100:6443", "tokenLifetime": 7200},
    "kubeletAPI": {"maxSessions": 100, "maxSessionsPerNamespace": 20, "maxSessionsPerUser": 4,
                   "execIdleTimeout": 600, "execMaxDuration": 7200.5},
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return build.ensure_built().path("helm")


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def template(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``helm template`` for the control plane's Kubernetes version."""
    return run_helm(helm, "template", "--kube-version", KUBE_VERSION, *args, check=check)


def render(helm: Path, tmp_path: Path, values: dict[str, Any] | None = None, *,
           release: str = "vk", namespace: str = "vk-system",
           extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = [release, str(CHART), "--namespace", namespace, "--include-crds", *extra]
    if values is not None:
        path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    out = template(helm, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def not_webhook(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without the admission webhook's Secret and Service (templates/webhook.yaml)."""
    return [d for d in docs if "-webhook" not in d["metadata"]["name"]]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} rendered"
    return found[0]


def dry_run(cp: cluster.ControlPlane, docs: list[dict[str, Any]]) -> str:
    """Server-side dry-run apply of every manifest but the Prometheus operator's kinds."""
    body = yaml.safe_dump_all([d for d in docs if d["kind"] not in OPERATOR_KINDS])
    result = cp.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                        input=body, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def settings_of(deployment: dict[str, Any]) -> config.Settings:
    """What ``vk-eci run`` makes of the Deployment's args and literal environment."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    # The kubelet expands $(VAR) in args from the container's env; the pod IP is POD_IP's.
    known = {**env, "POD_IP": POD_IP}
    expanded = [re.sub(r"\$\((\w+)\)", lambda m: known.get(m[1], m[0]), a)
                for a in container["args"]]
    args = build_parser().parse_args(["run", *expanded])
    return config.from_args(args, env=env)


@pytest.fixture
def release_namespace(namespace: str) -> str:
    """The namespace a release goes into: the shared per-test namespace."""
    return namespace


# --- lint and render ---------------------------------------------------------------------


def test_helm_lint_default_and_non_default_values(helm: Path, tmp_path: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(NON_DEFAULT))
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(path))
    assert "0 chart(s) failed" in result.stdout


def test_default_render_passes_the_api_server(helm: Path, tmp_path: Path,
                                              control_plane: cluster.ControlPlane,
                                              release_namespace: str) -> None:
    docs = render(helm, tmp_path, namespace=release_namespace)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
        "Role", "RoleBinding", "Role", "RoleBinding", "Role", "RoleBinding", "Deployment",
        "Service",
        # the ECI profile (docs/PROFILE.md): its Role, and the admission webhook
        "Role", "RoleBinding", "Secret", "Service", "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        # The injected kube-proxy's identity: system:node-proxier, nothing more.
        "ServiceAccount", "ClusterRoleBinding",
        # The ECI account's member Leases (eci.accountSharing, on by default).
        "Role", "RoleBinding"])
    proxy = [d for d in by_kind(docs, "ClusterRoleBinding")
             if d["roleRef"]["name"] == "system:node-proxier"]
    assert [d["subjects"] for d in proxy] == [[{"kind": "ServiceAccount",
                                                "name": "vk-eci-kube-proxy",
                                                "namespace": release_namespace}]]
    out = dry_run(control_plane, docs)
    assert "deployment.apps/vk-vk-eci" in out and "(server dry run)" in out
    dep = one(docs, "Deployment")
    # Hot standby by default: two replicas electing a leader, rolled one at a time.
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--node-leader-election" in container["args"]
    assert f"--node-leader-lease-namespace={release_namespace}" in container["args"]
    assert container["image"] == "vk-eci:0.1.0"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["ALIBABA_CLOUD_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "vk-vk-eci-credentials", "key": "access-key-id"}
    assert env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "vk-vk-eci-credentials", "key": "access-key-secret"}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # No Secret is made from values by default: the key never sits in a values file. (The one
    # Secret is the webhook's serving certificate, made by helm.)
    assert [s["metadata"]["name"] for s in by_kind(docs, "Secret")] == ["vk-vk-eci-webhook-tls"]
    webhook = one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert webhook["failurePolicy"] == "Ignore" and webhook["clientConfig"]["caBundle"]
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "kube-system", release_namespace]
    # ImageCache pull secrets: reviewed (mutate) and refused (validate) on CREATE and UPDATE,
    # failing closed, since the node trusts the review.
    for kind, path in (("MutatingWebhookConfiguration", "/mutate"),
                       ("ValidatingWebhookConfiguration", "/validate")):
        [caches] = [w for w in one(docs, kind)["webhooks"]
                    if any("imagecaches" in r["resources"] for r in w["rules"])]
        assert caches["failurePolicy"] == "Fail" and "namespaceSelector" not in caches
        assert caches["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert caches["clientConfig"]["service"]["path"] == path


def test_default_values_leave_only_the_cloud_network_to_set(helm: Path, tmp_path: Path) -> None:
    # The chart renders without values (lint, template), and the node then refuses to start
    # with one clear line, as NOTES.txt says.
    dep = one(render(helm, tmp_path), "Deployment")
    with pytest.raises(config.ConfigError, match=r"--vswitch is required"):
        settings_of(dep)
    values = {"eci": {"vswitches": ["vsw-a"], "securityGroup": "sg-1"}}
    s = settings_of(one(render(helm, tmp_path, values), "Deployment"))
    defaults = config.Settings(region="cn-hangzhou", vswitches=("vsw-a",), security_group="sg-1")
    # The defaults the chart changes: client certificates signed by the cluster CA (the
    # API server's, for kubectl logs/exec) are accepted, from the service account's ca.crt;
    # two replicas elect a leader on a Lease in the release namespace (hot standby).
    assert s == config.validate({
        **vars(defaults), "client_ca_file": SA_CA, "node_leader_election": True,
        # /metrics (unauthenticated) on the pod IP only, not 0.0.0.0.
        "metrics_addr": f"[{POD_IP}]:10255",
        "node_leader_lease_namespace": "vk-system", "node_leader_lease_name": "vk-vk-eci-leader",
        # The ECI profile in the release namespace; the webhook with the chart's certificate.
        "profile_configmap": "vk-system/eci-profile", "webhook_port": 9443,
        "webhook_tls_cert_file": Path("/etc/vk-eci/webhook-tls/tls.crt"),
        "webhook_tls_key_file": Path("/etc/vk-eci/webhook-tls/tls.key"),
        # That webhook reviews ImageCache pull secrets, so the controller trusts its review.
        "imagecache_trust_admission": True,
        # The injected kube-proxy's service account is the chart's, in its namespace.
        "kube_proxy_namespace": "vk-system",
        # The account's member Leases live in the release namespace.
        "eci_account_lease_namespace": "vk-system"})


def test_non_default_values_reach_vk_eci_run(helm: Path, tmp_path: Path) -> None:
    dep = one(render(helm, tmp_path, NON_DEFAULT), "Deployment")
    s = settings_of(dep)
    assert s.node_name == "vk-hz-h" and s.cluster_name == "prod-1"
    assert dict(s.labels) == {"team": "ci", "example.com/pool": "burst"}
    assert (s.cpu, s.memory, s.pods) == ("500", "2Ti", 2000)
    assert (s.gpu, s.ephemeral_storage, s.architecture) == (16, "10Ti", "arm64")
    assert s.kubelet_port == 10350
    assert (s.lease_duration, s.lease_renew_interval) == (30.0, 7.5)
    assert (s.node_status_interval, s.health_timeout) == (45.0, 3.0)
    assert (s.region, s.zone) == ("cn-hangzhou", "cn-hangzhou-h")
    assert s.vswitches == ("vsw-aaa", "vsw-bbb") and s.security_group == "sg-123"
    assert (s.eci_endpoint, s.eci_protocol) == ("eci-vpc.cn-hangzhou.aliyuncs.com", "https")
    assert (s.status_sync_interval, s.pod_workers, s.max_retries) == (2.5, 64, 20)
    assert (s.status_sync_mode, s.status_poll_interval, s.status_poll_fast_interval,
            s.status_resync_interval) == ("full", 2.0, 0.5, 90.0)
    assert s.imagecache_controller is False and s.imagecache_auto_create is False
    assert (s.imagecache_resync_interval, s.image_pull_policy) == (120.0, "warn")
    assert s.imagecache_min_relist_age == 15.0
    assert s.log_level == "debug"
    assert s.metrics_host_port == ("0.0.0.0", 9100)
    assert s.node_ip == "10.1.2.3"  # from extraEnv VK_ECI_NODE_IP
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.cn-hangzhou.aliyuncs.com/acme/vk-eci:1.2.3"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"kubelet": 10350, "http-metrics": 9100, "webhook": 9443}
    assert (s.cluster_ip_mode, s.kube_proxy_image, s.kube_proxy_apiserver,
            s.kube_proxy_token_lifetime) == (
        "kube-proxy", "registry.example/k8s/kube-proxy:v1.36.3", "https://10.0.0.100:6443",
        7200.0)
    assert dict(s.eci_rate_limits) == {"CreateContainerGroup": 100.0,
                                       "DescribeContainerLog@interactive": 20.0}
    assert s.imagecache_private_registries == ("registry.corp.example", "reg.example:5000")
    assert s.imagecache_shared_pull_namespaces == ("registry-creds", "ci")
    assert (s.kubelet_max_sessions, s.kubelet_max_sessions_per_namespace,
            s.kubelet_max_sessions_per_user) == (100, 20, 4)
    assert (s.kubelet_exec_idle_timeout, s.kubelet_exec_max_duration) == (600.0, 7200.5)
    # The advisor's fairness values (rendered only with the advisor on).
    advisor = {"mode": "suggest", "namespaceShare": 0.25, "minPullMiBPerS": 40}
    s = settings_of(one(render(helm, tmp_path, {
        **NON_DEFAULT, "imageCache": {**NON_DEFAULT["imageCache"], "advisor": advisor}}),
        "Deployment"))
    assert (s.imagecache_advisor_namespace_share,
            s.imagecache_advisor_min_pull_mib_per_s) == (0.25, 40.0)


def test_kube_system_is_readable_only_when_the_cluster_name_is_derived(
        helm: Path, tmp_path: Path) -> None:
    # No clusterName, so the node reads namespace kube-system (that one only)
    # to derive its name; a set name needs no namespace access at all.
    grant = {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"],
             "verbs": ["get"]}
    # (Listing and watching namespaces, for the profile's label selectors, is granted always.)
    labels = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
    rules = one(render(helm, tmp_path), "ClusterRole")["rules"]
    assert [r for r in rules if "namespaces" in r["resources"]] == [grant, labels]
    rules = one(render(helm, tmp_path, NON_DEFAULT), "ClusterRole")["rules"]
    assert [r for r in rules if "namespaces" in r["resources"]] == [labels]
    dep = one(render(helm, tmp_path), "Deployment")
    assert not any(a.startswith("--cluster-name") for a in
                   dep["spec"]["template"]["spec"]["containers"][0]["args"])


def test_non_default_render_passes_the_api_server(helm: Path, tmp_path: Path,
                                                  control_plane: cluster.ControlPlane,
                                                  release_namespace: str) -> None:
    docs = render(helm, tmp_path, NON_DEFAULT, namespace=release_namespace)
    dry_run(control_plane, docs)
    # No ImageCache controller: no leader-election Role, no ImageCache permissions.
    # (Other Roles: the profile's ConfigMap and the ECI account's member Leases, both in the
    # release namespace.)
    assert [r["metadata"]["namespace"] for r in by_kind(docs, "Role")] == [
        "kube-node-lease", release_namespace, release_namespace]
    groups = {g for rule in one(docs, "ClusterRole")["rules"] for g in rule["apiGroups"]}
    assert "eci.alibabacloud.com" not in groups


def test_kube_version_constraint(helm: Path) -> None:
    old = template(helm, "vk", str(CHART), "--kube-version", "v1.27.9", check=False)
    assert old.returncode != 0
    assert "chart requires kubeVersion: >=1.28.0-0" in old.stderr, old.stderr
    # Vendor builds carry a pre-release suffix; "-0" in the constraint lets them through.
    vendor = template(helm, "vk", str(CHART), "--kube-version", "v1.30.1-aliyun.1",
                      check=False)
    assert vendor.returncode == 0, vendor.stderr


def test_leader_lease_flags_name_the_lease_the_role_grants(helm: Path, tmp_path: Path) -> None:
    network = {"vswitches": ["vsw-a"], "securityGroup": "sg-1"}
    for election in (None, {"namespace": "vk-leader", "leaseName": "ic-leader.prod"}):
        values: dict[str, Any] = {"eci": network}
        if election is not None:
            values["imageCache"] = {"leaderElection": election}
        docs = render(helm, tmp_path, values, namespace="vk-system")
        s = settings_of(one(docs, "Deployment"))
        [role] = [r for r in by_kind(docs, "Role")
                  if r["metadata"]["name"].endswith("-leader-election")]
        named = [rule for rule in role["rules"] if rule.get("resourceNames")]
        assert [(rule["resources"], rule["resourceNames"]) for rule in named] == [
            (["leases"], [s.imagecache_lease_name])]
        assert {"get", "update"} <= set(named[0]["verbs"])
        assert role["metadata"]["namespace"] == s.imagecache_lease_namespace
        [binding] = [b for b in by_kind(docs, "RoleBinding")
                     if b["roleRef"]["name"] == role["metadata"]["name"]]
        assert binding["metadata"]["namespace"] == s.imagecache_lease_namespace
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vk-vk-eci",
                                        "namespace": "vk-system"}]
        expected = (election or {"namespace": "kube-system",
                                 "leaseName": "vk-eci-imagecache-controller"})
        assert (s.imagecache_lease_namespace, s.imagecache_lease_name) == (
            expected["namespace"], expected["leaseName"])


def test_advisor_flags_name_the_configmap_the_role_grants(
        helm: Path, tmp_path: Path, control_plane: cluster.ControlPlane,
        release_namespace: str) -> None:
    network = {"vswitches": ["vsw-a"], "securityGroup": "sg-1"}
    advisor = {"interval": 120, "window": 7200, "maxCaches": 4, "maxGiB": 200,
               "costPerGiBDay": 0.25, "hitOverhead": 1.5, "saveInterval": 30}

    def grants(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        rules = [r for d in by_kind(docs, "ClusterRole") for r in d["rules"]]
        return {(r["resources"][0], v, ",".join(r.get("resourceNames", [])))
                for r in rules if "eci.alibabacloud.com" in r["apiGroups"] for v in r["verbs"]}

    off = render(helm, tmp_path, {"eci": network}, namespace="vk-system")
    assert settings_of(one(off, "Deployment")).imagecache_advisor == "off"
    assert not [r for r in by_kind(off, "Role") if r["metadata"]["name"].endswith("-advisor")]
    controller = grants(off)
    for mode, extra in (("suggest", {("imagecaches", "list", "")}),
                        ("apply", {("imagecaches", v, "")
                                   for v in ("list", "get", "create", "patch", "delete")})):
        docs = render(helm, tmp_path, {"eci": network, "imageCache": {
            "controller": False, "advisor": {"mode": mode, **advisor}}},
            namespace=release_namespace)
        s = settings_of(one(docs, "Deployment"))
        assert (s.imagecache_advisor, s.imagecache_advisor_interval,
                s.imagecache_advisor_window, s.imagecache_advisor_max_caches,
                s.imagecache_advisor_max_gib, s.imagecache_advisor_cost_per_gib_day,
                s.imagecache_advisor_hit_overhead, s.imagecache_advisor_save_interval) == (
                    mode, 120.0, 7200.0, 4, 200, 0.25, 1.5, 30.0)
        namespace, _, name = s.imagecache_advisor_configmap.partition("/")
        [role] = [r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-advisor")]
        assert role["metadata"]["namespace"] == namespace == release_namespace
        assert sorted((rule["resources"][0], tuple(rule["verbs"]),
                       tuple(rule.get("resourceNames", ()))) for rule in role["rules"]) == [
            ("configmaps", ("create",), ()), ("configmaps", ("get", "patch"), (name,))]
        [binding] = [b for b in by_kind(docs, "RoleBinding")
                     if b["roleRef"]["name"] == role["metadata"]["name"]]
        assert binding["metadata"]["namespace"] == namespace
        # Exactly the advisor's ImageCache calls (the controller is off here).
        assert grants(docs) == extra
        if mode == "apply":
            dry_run(control_plane, docs)
    assert controller == {("imagecaches", v, "") for v in ("list", "watch", "patch")} | {
        ("imagecaches/status", "patch", "")}


def test_kubelet_tls_secret_and_client_ca(helm: Path, tmp_path: Path,
                                          control_plane: cluster.ControlPlane,
                                          release_namespace: str) -> None:
    values = {
        "eci": {"vswitches": ["vsw-a"], "securityGroup": "sg-1"},
        "kubeletTLS": {"secretName": "vk-kubelet-tls", "certKey": "cert.pem",
                       "keyKey": "key.pem", "clientCAFile": "/etc/vk-eci/client-ca/ca.crt"},
        "extraVolumes": [{"name": "client-ca", "configMap": {"name": "kubelet-client-ca"}}],
        "extraVolumeMounts": [{"name": "client-ca", "mountPath": "/etc/vk-eci/client-ca",
                               "readOnly": True}],
    }
    docs = render(helm, tmp_path, values, namespace=release_namespace)
    dry_run(control_plane, docs)
    dep = one(docs, "Deployment")
    s = settings_of(dep)
    pod = dep["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert s.tls_cert_file is not None and s.tls_key_file is not None
    # Both files the node reads come out of the named Secret's keys, read-only.
    tls_mount = next(m for m in mounts.values() if Path(m["mountPath"]) == s.tls_cert_file.parent)
    assert tls_mount["readOnly"] is True and s.tls_key_file.parent == s.tls_cert_file.parent
    secret = volumes[tls_mount["name"]]["secret"]
    assert secret["secretName"] == "vk-kubelet-tls"
    items = {i["key"]: i["path"] for i in secret["items"]}
    assert items == {"cert.pem": s.tls_cert_file.name, "key.pem": s.tls_key_file.name}
    assert secret["defaultMode"] == 0o440
    assert s.client_ca_file == Path("/etc/vk-eci/client-ca/ca.crt")
    assert Path(mounts["client-ca"]["mountPath"]) == s.client_ca_file.parent
    assert volumes["client-ca"]["configMap"] == {"name": "kubelet-client-ca"}

    # Defaults: no Secret, so the node self-signs; the service account's CA for clients.
    dep = one(render(helm, tmp_path, {"eci": values["eci"]}), "Deployment")
    s = settings_of(dep)
    assert (s.tls_cert_file, s.tls_key_file) == (None, None)
    assert s.client_ca_file == SA_CA
    assert "kubelet-tls" not in {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]}
    # An empty clientCAFile: bearer tokens only.
    s = settings_of(one(render(helm, tmp_path, {"eci": values["eci"],
                                                "kubeletTLS": {"clientCAFile": ""}}),
                        "Deployment"))
    assert s.client_ca_file is None


def test_probes_get_healthz_on_the_metrics_port(helm: Path, tmp_path: Path) -> None:
    dep = one(render(helm, tmp_path, NON_DEFAULT), "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        # The port the node serves /metrics and /healthz on (test_chart_node.py asks it).
        assert ports[get["port"]] == settings_of(dep).metrics_host_port[1] == 9100, probe


def test_rrsa_credentials(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, NON_DEFAULT)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ALIBABA_CLOUD_ROLE_ARN"] == "acs:ram::1234567890:role/vk-eci"
    assert env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"].endswith("oidc-provider/ack-rrsa-c123")
    token_file = Path(env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"])
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" not in env
    mount = next(m for m in container["volumeMounts"] if m["name"] == "rrsa-token")
    assert Path(mount["mountPath"]) / "token" == token_file
    volume = next(v for v in pod["volumes"] if v["name"] == "rrsa-token")
    source = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert source == {"path": "token", "audience": "sts.aliyuncs.com", "expirationSeconds": 3600}
    node_sa = [d for d in by_kind(docs, "ServiceAccount")
               if d["metadata"]["name"] != "vk-eci-kube-proxy"]
    assert [d["metadata"]["annotations"] for d in node_sa] == [{"example.com/owner": "platform"}]
    # The node's own check of the credential chain accepts exactly these variables.
    from vk_eci.cloud.api.credentials import credential_from_env
    credential_from_env({k: v for k, v in env.items() if k.startswith("ALIBABA_CLOUD_")})


def test_chart_made_secret(helm: Path, tmp_path: Path, control_plane: cluster.ControlPlane,
                           release_namespace: str) -> None:
    values = {"credentials": {"secret": {"create": True, "accessKeyId": "LTAI-test",
                                         "accessKeySecret": "s3cr3t"}}}
    docs = render(helm, tmp_path, values, namespace=release_namespace)
    secret = one(not_webhook(docs), "Secret")
    assert secret["metadata"]["name"] == "vk-vk-eci-credentials"
    assert set(secret["data"]) == {"access-key-id", "access-key-secret"}
    dep = one(docs, "Deployment")
    # The secret value is nowhere in the Deployment (only a checksum that rolls the pod).
    assert "s3cr3t" not in json.dumps(dep) and "LTAI-test" not in json.dumps(dep)
    other = one(render(helm, tmp_path, {"credentials": {"secret": {
        "create": True, "accessKeyId": "LTAI-test", "accessKeySecret": "other"}}}), "Deployment")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/credentials"] != \
        other["spec"]["template"]["metadata"]["annotations"]["checksum/credentials"]
    dry_run(control_plane, docs)
    missing = template(helm, "vk", str(CHART), "--set", "credentials.secret.create=true",
                       check=False)
    assert missing.returncode != 0
    assert "credentials.secret.accessKeyId is required" in missing.stderr


# --- Prometheus operator kinds and the dashboard ----------------------------------------


def test_service_monitor_selects_the_metrics_service(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, NON_DEFAULT, namespace="mon")
    sm = one(docs, "ServiceMonitor")
    svc = one(not_webhook(docs), "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kps"
    selector = sm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # job label = vk-eci, which the alert on a missing target expects.
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "vk-eci"
    # The Service reaches the container's metrics port.
    dep = one(docs, "Deployment")
    assert svc["spec"]["selector"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    port = next(p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"])
    container_ports = {p["name"]: p["containerPort"]
                       for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert port["targetPort"] in container_ports and port["port"] == 9100


def test_prometheus_rule_carries_the_rule_file(helm: Path, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install -y prometheus (hack/test.sh does it)"
    rule = one(render(helm, tmp_path, NON_DEFAULT), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))
    path = tmp_path / "rendered.rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    records = {r.get("record") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "vk_eci:image_cache_hit_ratio:rate5m" in records


def test_dashboard_config_map(helm: Path, tmp_path: Path) -> None:
    cm = one(render(helm, tmp_path, NON_DEFAULT, namespace="mon"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "mon"
    assert json.loads(cm["data"]["vk-eci.json"]) == json.loads(DASHBOARD.read_text())
    docs = render(helm, tmp_path)
    assert by_kind(docs, "ConfigMap") == [] and by_kind(docs, "PrometheusRule") == []


# --- the values schema ---------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ({"eci": {"vswitches": ["subnet-1"]}}, "/eci/vswitches/0"),
    ({"eci": {"securityGroup": "default"}}, "/eci/securityGroup"),
    ({"eci": {"protocol": "ftp"}}, "/eci/protocol"),
    ({"node": {"name": "Virtual_Kubelet"}}, "/node/name"),
    ({"node": {"capacity": {"memory": "lots"}}}, "/node/capacity/memory"),
    ({"node": {"capacity": {"pods": 0}}}, "/node/capacity/pods"),
    ({"node": {"capacity": {"gpu": -1}}}, "/node/capacity/gpu"),
    ({"node": {"architecture": "riscv64"}}, "/node/architecture"),
    ({"logLevel": "trace"}, "/logLevel"),
    ({"imageCache": {"pullPolicy": "always"}}, "/imageCache/pullPolicy"),
    ({"imageCache": {"advisor": {"mode": "auto"}}}, "/imageCache/advisor/mode"),
    ({"imageCache": {"advisor": {"mode": "apply", "costPerGiBDay": -1}}},
     "/imageCache/advisor/costPerGiBDay"),
    ({"credentials": {"mode": "flag"}}, "/credentials/mode"),
    ({"metrics": {"port": 70000}}, "/metrics/port"),
    ({"metrics": {"address": "0.0.0.0:80"}}, "/metrics/address"),
    ({"nodeName": "typo"}, "nodeName"),
    ({"kubeletTLS": {"secretName": "Kubelet_TLS"}}, "/kubeletTLS/secretName"),
    ({"kubeletTLS": {"clientCAFile": "ca.crt"}}, "/kubeletTLS/clientCAFile"),
    ({"imageCache": {"leaderElection": {"namespace": "Kube-System",
                                        "leaseName": "x"}}},
     "/imageCache/leaderElection/namespace"),
])
def test_schema_refuses_bad_values(helm: Path, tmp_path: Path, values: dict[str, Any],
                                   message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    result = template(helm, "vk", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    assert "schema" in result.stderr and message in result.stderr, result.stderr


@pytest.mark.parametrize(("values", "message"), [
    ({"node": {"leaseDuration": 10, "leaseRenewInterval": 10}},
     "node.leaseRenewInterval must be shorter than node.leaseDuration"),
    ({"credentials": {"mode": "rrsa"}}, "credentials.rrsa.roleArn is required"),
    ({"credentials": {"mode": "ramRole"}}, "credentials.ramRole.roleName is required"),
])
def test_inconsistent_values_fail_with_a_message(helm: Path, tmp_path: Path,
                                                 values: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    result = template(helm, "vk", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


# --- installed for real: RBAC as the ServiceAccount sees it --------------------------


def test_installed_service_account_has_exactly_the_node_permissions(
        helm: Path, control_plane: cluster.ControlPlane, release_namespace: str) -> None:
    release = release_namespace  # unique, so cluster-scoped names do not collide
    kube = ["--kubeconfig", str(control_plane.kubeconfig)]
    run_helm(helm, "install", release, str(CHART), "--namespace", release_namespace, *kube,
             "--set", "node.name=vk-rbac-" + release[-8:])
    try:
        node = "vk-rbac-" + release[-8:]
        sa = f"system:serviceaccount:{release_namespace}:{release}-vk-eci"

        def can(verb: str, resource: str, *extra: str) -> bool:
            result = control_plane.kubectl("auth", "can-i", verb, resource, "--as", sa,
                                           *extra, check=False)
            return result.stdout.strip() == "yes"

        allowed = [
            ("create", "nodes"), ("get", f"nodes/{node}"), ("patch", f"nodes/{node}"),
            ("patch", f"nodes/{node}", "--subresource=status"),
            ("list", "pods", "--all-namespaces"), ("watch", "pods", "--all-namespaces"),
            ("patch", "pods", "-n", "default"), ("delete", "pods", "-n", "default"),
            ("patch", "pods", "--subresource=status", "-n", "default"),
            ("create", "events", "-n", "default"), ("patch", "events", "-n", "default"),
            ("get", "secrets", "-n", "default"), ("get", "configmaps", "-n", "default"),
            ("list", "services", "-n", "default"),
            ("create", "serviceaccounts", "--subresource=token", "-n", "default"),
            ("create", "tokenreviews.authentication.k8s.io"),
            ("create", "subjectaccessreviews.authorization.k8s.io"),
            # No clusterName: the node derives one from this namespace's UID.
            ("get", "namespaces/kube-system"),
            ("create", "leases.coordination.k8s.io", "-n", "kube-node-lease"),
            ("patch", f"leases.coordination.k8s.io/{node}", "-n", "kube-node-lease"),
            ("get", "leases.coordination.k8s.io/vk-eci-imagecache-controller",
             "-n", "kube-system"),
            ("update", "leases.coordination.k8s.io/vk-eci-imagecache-controller",
             "-n", "kube-system"),
            # The replicas' leader Lease (hot standby), in the release namespace.
            ("get", f"leases.coordination.k8s.io/{release}-vk-eci-leader",
             "-n", release_namespace),
            ("update", f"leases.coordination.k8s.io/{release}-vk-eci-leader",
             "-n", release_namespace),
            # The ECI account's member Leases (one per process, named after its pod, so not
            # by name): any Lease of the release namespace.
            ("create", "leases.coordination.k8s.io", "-n", release_namespace),
            ("list", "leases.coordination.k8s.io", "-n", release_namespace),
            ("watch", "leases.coordination.k8s.io", "-n", release_namespace),
            ("update", "leases.coordination.k8s.io/other", "-n", release_namespace),
            ("delete", "leases.coordination.k8s.io/other", "-n", release_namespace),
            ("watch", "imagecaches.eci.alibabacloud.com"),
            ("patch", "imagecaches.eci.alibabacloud.com"),
            ("patch", "imagecaches.eci.alibabacloud.com", "--subresource=status"),
            # The ECI profile (docs/PROFILE.md): namespaces' labels, and its ConfigMap by name.
            ("list", "namespaces"), ("watch", "namespaces"),
            ("list", "configmaps/eci-profile", "-n", release_namespace),
            ("watch", "configmaps/eci-profile", "-n", release_namespace),
        ]
        denied = [
            ("patch", "nodes/some-real-node"), ("delete", f"nodes/{node}"),
            # Cut to what the code calls: no updates, no lists/watches of secrets.
            ("update", f"nodes/{node}"), ("update", "pods", "-n", "default"),
            ("list", "secrets", "--all-namespaces"), ("watch", "configmaps", "--all-namespaces"),
            ("create", "events.events.k8s.io", "-n", "default"),
            ("update", "imagecaches.eci.alibabacloud.com", "--subresource=finalizers"),
            ("create", "pods", "-n", "default"), ("create", "secrets", "-n", "default"),
            ("delete", "secrets", "-n", "default"), ("update", "configmaps", "-n", "default"),
            ("update", "leases.coordination.k8s.io/some-real-node", "-n", "kube-node-lease"),
            ("update", "leases.coordination.k8s.io/kube-scheduler", "-n", "kube-system"),
            ("list", "leases.coordination.k8s.io", "-n", "kube-system"),
            ("create", "imagecaches.eci.alibabacloud.com"),
            ("delete", "imagecaches.eci.alibabacloud.com"),
            ("create", "deployments.apps", "-n", "default"),
            ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
            ("get", f"nodes/{node}", "--subresource=proxy"),
            ("create", "serviceaccounts", "-n", "default"),
            ("get", "namespaces/default"), ("update", "namespaces/default"),
            ("list", "configmaps/other", "-n", release_namespace),
        ]
        # One kubectl per question; asked a few at a time to keep the test short.
        with ThreadPoolExecutor(max_workers=6) as pool:
            got_allowed = list(pool.map(lambda a: can(*a), allowed))
            got_denied = list(pool.map(lambda d: can(*d), denied))
        wrong = [a for a, ok in zip(allowed, got_allowed, strict=True) if not ok]
        assert wrong == [], f"denied but needed: {wrong}"
        wrong = [d for d, ok in zip(denied, got_denied, strict=True) if ok]
        assert wrong == [], f"allowed but not needed: {wrong}"
        status = run_helm(helm, "status", release, "--namespace", release_namespace, *kube)
        assert "STATUS: deployed" in status.stdout
    finally:
        run_helm(helm, "uninstall", release, "--namespace", release_namespace, *kube,
                 check=False)
    left = control_plane.kubectl("get", "clusterrole", f"{release}-vk-eci", check=False)
    assert left.returncode != 0, "helm uninstall left the ClusterRole behind"
    # Helm never deletes a chart's CRDs: ImageCaches survive an uninstall.
    control_plane.kubectl("get", "crd", "imagecaches.eci.alibabacloud.com")
