"""Typed settings of ``vk-eci run``: flags, ``VK_ECI_*`` environment variables, a YAML file.

Precedence is flag > environment > file > default, decided per setting. Everything is validated
here, before the node contacts anything, and a bad value is a :class:`ConfigError` naming the
setting and the reason. Credentials are deliberately absent: they come only from Alibaba's
credential chain (environment, RAM role, RRSA), never from a flag or this file.

This module is the table of settings (:class:`Settings` and the flags that fill it) and its
reader; how one value is parsed is in :mod:`vk_eci.config_values`, the checks across settings
in :mod:`vk_eci.config_checks`. Their public names are exported from here as before.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vk_eci.config_checks import (
    ADVISOR_MODES,
    ARCHITECTURES,
    LOG_LEVELS,
    PULL_POLICY_MODES,
    STATUS_SYNC_MODES,
    check,
)
from vk_eci.config_values import (
    ENV_PREFIX,
    ConfigError,
    as_bool,
    as_int,
    as_labels,
    as_list,
    as_number,
    as_path,
    as_rates,
    as_seconds,
    as_str,
    env_of,
    flag_of,
    is_loopback,
    parse_quantity,
    plain_http_refusal,
    split_hostport,
)

__all__ = ["ADVISOR_MODES", "ARCHITECTURES", "ENV_PREFIX", "LOG_LEVELS", "PULL_POLICY_MODES",
           "STATUS_SYNC_MODES", "ConfigError", "Settings", "add_arguments", "from_args",
           "is_loopback", "parse_quantity", "plain_http_refusal", "validate"]


@dataclass(frozen=True)
class Settings:
    """Everything ``vk-eci run`` needs, validated. Durations are seconds."""

    region: str
    vswitches: tuple[str, ...]
    security_group: str
    kubeconfig: Path | None = None
    node_name: str = "virtual-kubelet"
    zone: str | None = None
    # Empty: derived at start-up from the kube-system namespace's UID (runner.resolve_cluster).
    cluster_name: str = ""
    # Set by the runner when it derived the name: the name earlier versions used by default,
    # whose groups on this node are adopted only when they belong to this node's pods.
    legacy_cluster_name: str = ""
    # The kubelet's DNS flags: nameservers and domain of dnsPolicy ClusterFirst pods.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    eci_endpoint: str = ""  # filled from the region when empty
    eci_protocol: str = "https"
    # Plain http to an endpoint that is not loopback sends registry passwords and secret
    # volumes in clear text: only on explicit request.
    insecure_eci_endpoint: bool = False
    cpu: str = "1000"
    memory: str = "4Ti"
    pods: int = 1000
    # Extended capacity (docs/ANNOTATIONS.md): GPUs are advertised only when configured (0: none,
    # so GPU pods never land here); ephemeral storage lets pods that request it schedule.
    gpu: int = 0
    ephemeral_storage: str = "40Ti"
    # One node per CPU architecture: its kubernetes.io/arch label and the CpuArchitecture sent.
    architecture: str = "amd64"
    kubelet_port: int = 10250
    kubelet_address: str = "0.0.0.0"  # where the kubelet API listens
    # Open `logs -f`/exec sessions at most: on the node, per target namespace, per token user.
    kubelet_max_sessions: int = 64
    kubelet_max_sessions_per_namespace: int = 16
    kubelet_max_sessions_per_user: int = 8
    # Exec sessions end after this long without data either way, or this long in all (0: never).
    kubelet_exec_idle_timeout: float = 4 * 3600.0
    kubelet_exec_max_duration: float = 24 * 3600.0
    metrics_addr: str = "0.0.0.0:10255"
    log_level: str = "info"
    lease_duration: float = 40.0
    lease_renew_interval: float = 10.0
    node_status_interval: float = 60.0
    status_sync_interval: float = 5.0  # the full-listing mode's cycle
    # Pod status (docs/BEHAVIOUR.md §10): "incremental" polls ECI for what changed every
    # status_poll_interval (status_poll_fast_interval while a pod starts or stops) and lists
    # everything every status_resync_interval; "full" lists everything every
    # status_sync_interval, as before (kept for comparison).
    status_sync_mode: str = "incremental"
    status_poll_interval: float = 1.0
    status_poll_fast_interval: float = 0.25
    status_resync_interval: float = 60.0
    health_timeout: float = 5.0
    pod_workers: int = 32
    max_retries: int = 15
    imagecache_controller: bool = True
    image_pull_policy: str = "rewrite"
    # Image caches for pods (docs/IMAGE_CACHES.md): let ECI match server-side on an automatic
    # miss (and build a cache for next time); how often the cache catalog re-lists
    # DescribeImageCaches.
    imagecache_auto_create: bool = True
    imagecache_resync_interval: float = 60.0
    # An automatic lookup that misses (or finds a partial cache) re-lists the caches at once,
    # unless a listing began less than this many seconds ago (a burst shares one listing).
    imagecache_min_relist_age: float = 5.0
    # The ImageCache controller's leader-election Lease (chart: imageCache.leaderElection); the
    # chart's RBAC Role grants exactly this Lease, so both come from the same values.
    imagecache_lease_namespace: str = "kube-system"
    imagecache_lease_name: str = "vk-eci-imagecache-controller"
    # The cache advisor (docs/ADVISOR.md): off, suggest (the plan as events on the Node, metrics
    # and a log line) or apply (advisor-owned ImageCache objects). It re-plans every interval from
    # the demand observed over a decaying window, within the budget (max caches, max GiB, and
    # the pull seconds per day one GiB-day of cache must save), and keeps that demand in the
    # ConfigMap NAMESPACE/NAME (empty: kube-system/vk-eci-advisor-<node name>), written at
    # most every save interval by the node's leader.
    imagecache_advisor: str = "off"
    imagecache_advisor_interval: float = 300.0
    imagecache_advisor_window: float = 21600.0
    imagecache_advisor_max_caches: int = 10
    imagecache_advisor_max_gib: int = 2048
    imagecache_advisor_cost_per_gib_day: float = 1.0
    # Seconds a pod started from a cache spends attaching its disk: planning subtracts it from
    # every hit, so a cache of a pod's tiny images is not "saving" time it costs.
    imagecache_advisor_hit_overhead: float = 2.0
    imagecache_advisor_configmap: str = ""
    imagecache_advisor_save_interval: float = 60.0
    # Hot standby (docs/RELIABILITY.md): replicas serving one node name elect a leader on this
    # Lease; only the leader registers the Node, renews its Lease, writes pod status and
    # creates/deletes groups. Empty name: vk-eci-node-<node name>.
    node_leader_election: bool = False
    node_leader_lease_namespace: str = "kube-system"
    node_leader_lease_name: str = ""
    # This process among the replicas of one node (Lease holder identity, field manager).
    # Empty: $POD_NAME, else hostname and a random suffix.
    identity: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    # Client-side per-minute budgets by ECI action, over the defaults (0.85 x ECI's documented
    # limits); 0 = unlimited. Raise them only with a raised ECI quota.
    eci_rate_limits: Mapping[str, float] = field(default_factory=dict)
    # The fleet (docs/RELIABILITY.md "One account budget"): every process of one ECI account in
    # the cluster shares --eci-rate-limits (the account's) through member Leases in this
    # namespace; the account is named by region and a hash of --eci-account (default: the
    # access key id or RAM role of the credential chain).
    eci_account_sharing: bool = True
    eci_account_lease_namespace: str = "kube-system"
    eci_account: str = ""
    # The cache advisor once per cluster (docs/ADVISOR.md "A fleet"): NAMESPACE/NAME of the
    # Lease its planner elects on among every node's leader; empty: an advisor per node.
    imagecache_advisor_lease: str = ""
    node_ip: str = ""  # empty: $POD_IP, else a specific --kubelet-address, else 127.0.0.1
    # kubelet API TLS: serving cert/key files (absent: self-signed at start) and the
    # CA of client certificates (the API server's kubelet client cert); absent: tokens only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None
    # The ECI profile (docs/PROFILE.md): its ConfigMap, and single-tenant mode (no policy).
    profile_configmap: str = ""  # NAMESPACE/NAME; empty: $POD_NAMESPACE/eci-profile
    single_tenant: bool = False
    # The admission webhook (docs/PROFILE.md): its port (0: not served) and TLS pair.
    webhook_port: int = 0
    webhook_tls_cert_file: Path | None = None
    webhook_tls_key_file: Path | None = None
    # Service access (docs/BEHAVIOUR.md "Services and DNS"): a kube-proxy in each group, of the
    # image (empty: registry.k8s.io/kube-proxy of the API server's version), its token of the
    # service account vk-eci-kube-proxy in that namespace, valid that long, reaching the API
    # server at that URL (empty: the one the node uses).
    cluster_ip_mode: str = "kube-proxy"
    kube_proxy_image: str = ""
    kube_proxy_namespace: str = "kube-system"
    kube_proxy_apiserver: str = ""
    kube_proxy_token_lifetime: float = 86400.0
    # Private images and pull secrets across tenants (docs/IMAGE_CACHES.md, docs/SECURITY.md):
    # registries whose cached images only pods with credentials for them may start from;
    # namespaces whose pull secrets any ImageCache object may name; whether the admission
    # webhook's review of an ImageCache's secrets (an annotation it writes) is trusted.
    imagecache_private_registries: tuple[str, ...] = ()
    imagecache_shared_pull_namespaces: tuple[str, ...] = ()
    imagecache_trust_admission: bool = False
    # The advisor's fairness across tenants (docs/ADVISOR.md).
    imagecache_advisor_namespace_share: float = 0.5
    imagecache_advisor_min_pull_mib_per_s: float = 10.0
    # Past this age a cache's mutable tags keep pulling Always (docs/IMAGE_CACHES.md).
    imagecache_refresh_period: float = 86400.0
    # Pods annotated vk-eci.io/refresh-volumes: restart are checked this often, and refreshed
    # (an instance restart) at most this often (docs/BEHAVIOUR.md §6).
    volume_refresh_interval: float = 60.0

    @property
    def metrics_host_port(self) -> tuple[str, int]:
        host, port = split_hostport("metrics-addr", self.metrics_addr)
        return host, port


@dataclass(frozen=True)
class _Opt:
    """One setting: its flag, how to parse a string (env, file), and its help."""

    name: str  # Settings field
    help: str
    parse: Callable[[str, Any], Any]
    flag_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def flag(self) -> str:
        return flag_of(self.name)

    @property
    def env(self) -> str:
        return env_of(self.name)



_OPTS: tuple[_Opt, ...] = (
    _Opt("kubeconfig", "kubeconfig file (default: in-cluster config)", as_path),
    _Opt("node_name", "name of the virtual Node (default virtual-kubelet)", as_str),
    _Opt("region", "ECI region id, e.g. cn-hangzhou (required)", as_str),
    _Opt("zone", "ECI zone id, e.g. cn-hangzhou-h (topology label; optional)", as_str),
    _Opt("vswitches", "vSwitch id for container groups; repeat or comma-separate (required)",
         as_list, {"action": "append", "dest": "vswitches", "metavar": "VSW"}),
    _Opt("security_group", "security group id for container groups (required)", as_str),
    _Opt("cluster_name", "cluster name tagged on every container group and cache (default: "
         "k8s-<UID of the kube-system namespace>, unique per cluster)", as_str),
    _Opt("cluster_dns", "cluster DNS server IP for ClusterFirst pods; repeat or comma-separate "
         "(default: none, pods fall back to ECI's resolvers with a MissingClusterDNS Warning)",
         as_list, {"action": "append", "metavar": "IP"}),
    _Opt("cluster_domain", "cluster domain of the pods' DNS search path (default "
         "cluster.local)", as_str),
    _Opt("eci_endpoint", "ECI API endpoint host[:port] (default eci.<region>.aliyuncs.com)",
         as_str),
    _Opt("eci_protocol", "https (default) or http (only for the local emulator)", as_str),
    _Opt("insecure_eci_endpoint", "allow --eci-protocol http to an endpoint that is not "
         "loopback (requests carry registry passwords and secrets in clear text)", as_bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("cpu", "node cpu capacity (default 1000)", as_str),
    _Opt("memory", "node memory capacity (default 4Ti)", as_str),
    _Opt("pods", "node pod capacity (default 1000)", as_int),
    _Opt("gpu", "node nvidia.com/gpu capacity (default 0: GPU pods do not schedule here)",
         as_int),
    _Opt("ephemeral_storage", "node ephemeral-storage capacity (default 40Ti)", as_str),
    _Opt("architecture", "amd64 (default) or arm64: the node's kubernetes.io/arch and the "
         "CpuArchitecture of its container groups (one node per architecture)", as_str),
    _Opt("kubelet_port", "kubelet API port advertised on the Node (default 10250)", as_int),
    _Opt("kubelet_address", "IP address the kubelet API listens on (default 0.0.0.0)", as_str),
    _Opt("kubelet_max_sessions", "open kubectl logs -f / exec sessions at most on the node "
         "(default 64; more are refused with 429)", as_int),
    _Opt("kubelet_max_sessions_per_namespace", "open sessions at most per namespace of the "
         "target pod (default 16)", as_int),
    _Opt("kubelet_max_sessions_per_user", "open sessions at most per token-authenticated "
         "caller (default 8)", as_int),
    _Opt("kubelet_exec_idle_timeout", "seconds an exec session may move no data before the "
         "node closes it, as the kubelet's --streaming-connection-idle-timeout (default 14400: "
         "4 h; 0: never)", as_seconds),
    _Opt("kubelet_exec_max_duration", "seconds an exec session may last in all (default "
         "86400: 24 h; 0: no limit)", as_seconds),
    _Opt("metrics_addr", "host:port of the Prometheus /metrics server (default 0.0.0.0:10255)",
         as_str),
    _Opt("log_level", "debug, info (default), warning or error", as_str),
    _Opt("lease_duration", "node Lease duration in seconds (default 40)", as_seconds),
    _Opt("lease_renew_interval", "seconds between Lease renewals (default 10)", as_seconds),
    _Opt("node_status_interval", "seconds between full Node status updates (default 60)",
         as_seconds),
    _Opt("status_sync_interval", "seconds between full listings in --status-sync-mode full "
         "(default 5)", as_seconds),
    _Opt("status_sync_mode", "incremental (default: ask ECI what changed) or full (list "
         "every group each cycle)", as_str),
    _Opt("status_poll_interval", "seconds between polls for changed statuses (default 1)",
         as_seconds),
    _Opt("status_poll_fast_interval", "seconds between those polls while a pod starts or "
         "stops (default 0.25)", as_seconds),
    _Opt("status_resync_interval", "seconds between full listings that reconcile missed "
         "changes and vanished groups in incremental mode (default 60)", as_seconds),
    _Opt("health_timeout", "seconds the ECI health call may take (default 5)", as_seconds),
    _Opt("pod_workers", "pods worked on at once (default 32)", as_int),
    _Opt("max_retries", "retries of a failing pod before giving up (default 15)", as_int),
    _Opt("imagecache_controller", "run the ImageCache controller (default on)", as_bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("image_pull_policy", "Always→IfNotPresent for cached pods: rewrite (default), warn, off",
         as_str),
    _Opt("imagecache_auto_create", "on an automatic-match miss send AutoMatchImageCache "
         "(default on)", as_bool, {"action": argparse.BooleanOptionalAction}),
    _Opt("imagecache_resync_interval", "seconds between full image-cache re-syncs "
         "(default 60)", as_seconds),
    _Opt("imagecache_min_relist_age", "an automatic-match miss re-lists the image caches unless "
         "a listing began this many seconds ago (default 5)", as_seconds),
    _Opt("imagecache_lease_namespace", "namespace of the ImageCache controller's leader "
         "Lease (default kube-system)", as_str),
    _Opt("imagecache_lease_name", "name of the ImageCache controller's leader Lease "
         "(default vk-eci-imagecache-controller)", as_str),
    _Opt("imagecache_advisor", "the cache advisor: off (default), suggest (the plan as Node "
         "events, metrics and a log line) or apply (creates, updates and retires ImageCache "
         "objects labelled eci.vk-eci.io/advisor; never touches others)", as_str),
    _Opt("imagecache_advisor_interval", "seconds between the advisor's plans (default 300)",
         as_seconds),
    _Opt("imagecache_advisor_window", "seconds over which observed demand decays (default "
         "21600: 6 h)", as_seconds),
    _Opt("imagecache_advisor_max_caches", "caches the advisor may plan at most (default 10)",
         as_int),
    _Opt("imagecache_advisor_max_gib", "GiB of cache disk the advisor may plan at most "
         "(default 2048)", as_int),
    _Opt("imagecache_advisor_cost_per_gib_day", "pull seconds per day that one GiB-day of "
         "cache must save to be worth it (default 1)", as_number),
    _Opt("imagecache_advisor_hit_overhead", "seconds a pod started from a cache spends "
         "attaching it, subtracted from every hit when planning (default 2)", as_number),
    _Opt("imagecache_advisor_configmap", "NAMESPACE/NAME of the ConfigMap keeping the observed "
         "demand across restarts (default kube-system/vk-eci-advisor-<node name>)", as_str),
    _Opt("imagecache_advisor_save_interval", "seconds between writes of that ConfigMap at "
         "most (default 60)", as_seconds),
    _Opt("node_leader_election", "replicas of one node elect a leader; the others stand by "
         "warm (default off)", as_bool, {"action": argparse.BooleanOptionalAction}),
    _Opt("node_leader_lease_namespace", "namespace of the node's leader Lease "
         "(default kube-system)", as_str),
    _Opt("node_leader_lease_name", "name of the node's leader Lease "
         "(default vk-eci-node-<node name>)", as_str),
    _Opt("identity", "this process's identity among the node's replicas (default $POD_NAME, "
         "else hostname-<random>)", as_str),
    _Opt("eci_rate_limits", "client-side budget ACTION=PER_MINUTE over the defaults (0.85 x "
         "ECI's documented limits; 0 = unlimited), ACTION@interactive=PER_MINUTE for the share "
         "of kubectl logs/exec; repeat or comma-separate", as_rates,
         {"action": "append", "metavar": "ACTION=PER_MINUTE"}),
    _Opt("eci_account_sharing", "share --eci-rate-limits with every vk-eci process of the "
         "same ECI account in the cluster through member Leases (default on)", as_bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("eci_account_lease_namespace", "namespace of the member Leases of the ECI account's "
         "processes (default kube-system)", as_str),
    _Opt("eci_account", "what names the ECI account among processes sharing its limits "
         "(hashed; default: the access key id or RAM role)", as_str),
    _Opt("imagecache_advisor_lease", "NAMESPACE/NAME of a Lease: the advisor plans once for "
         "the cluster, in the node leader holding it, from every node's demand ConfigMap in "
         "the namespace of --imagecache-advisor-configmap (default empty: per node)", as_str),
    _Opt("labels", "extra node label key=value; repeat or comma-separate", as_labels,
         {"action": "append", "metavar": "KEY=VALUE"}),
    _Opt("node_ip", "InternalIP address of the Node (default $POD_IP, else --kubelet-address "
         "when it is one specific address, else 127.0.0.1)", as_str),
    _Opt("tls_cert_file", "kubelet API serving certificate (PEM; default: self-signed)", as_path),
    _Opt("tls_key_file", "key of --tls-cert-file (PEM)", as_path),
    _Opt("client_ca_file", "CA of client certificates accepted by the kubelet API, e.g. the "
         "cluster CA that signed the API server's kubelet client cert (default: none)", as_path),
    _Opt("profile_configmap", "NAMESPACE/NAME of the ECI profile ConfigMap, hot-reloaded "
         "(default $POD_NAMESPACE, else kube-system, /eci-profile; docs/PROFILE.md)", as_str),
    _Opt("single_tenant", "single-tenant mode: every namespace may use every annotation and "
         "size (default off: the profile's policy denies what it does not allow)", as_bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("webhook_port", "port of the admission webhook (profile selectors, policy, "
         "ImageCache checks) on --kubelet-address (default 0: not served)", as_int),
    _Opt("webhook_tls_cert_file", "the webhook's serving certificate (PEM; default: "
         "self-signed)", as_path),
    _Opt("webhook_tls_key_file", "key of --webhook-tls-cert-file (PEM)", as_path),
    _Opt("cluster_ip_mode", "Service (ClusterIP) access from pods: kube-proxy (default: one "
         "in each container group; a pod opts out with the annotation vk-eci.io/cluster-ip: "
         "\"false\") or none", as_str),
    _Opt("kube_proxy_image", "image of the injected kube-proxy, e.g. in a private registry "
         "(default registry.k8s.io/kube-proxy:<the API server's version>)", as_str),
    _Opt("kube_proxy_namespace", "namespace of the vk-eci-kube-proxy service account whose "
         "token the injected kube-proxy uses (default kube-system)", as_str),
    _Opt("kube_proxy_apiserver", "https URL of the API server as container groups reach it "
         "(default: the node's own; set it when that is the in-cluster Service address)",
         as_str),
    _Opt("kube_proxy_token_lifetime", "seconds the injected kube-proxy's token is valid; it "
         "cannot be refreshed in a running group (default 86400)", as_seconds),
    _Opt("imagecache_private_registries", "registries whose images are never started from an "
         "image cache without the pod's own credentials for them; comma-separate", as_list),
    _Opt("imagecache_shared_pull_namespaces", "namespaces whose pull secrets any ImageCache object "
         "may name (default none); comma-separate", as_list),
    _Opt("imagecache_trust_admission", "use an ImageCache's other-namespace pull secrets that "
         "the admission webhook reviewed for its author (default off)", as_bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("imagecache_advisor_namespace_share", "when several namespaces make demand, the most "
         "of the advisor's caches and GiB one of them may be served by (default 0.5)",
         as_number),
    _Opt("imagecache_advisor_min_pull_mib_per_s", "an image's pull seconds count at most 10 s "
         "plus its size at this many MiB/s (default 10)", as_number),
    _Opt("imagecache_refresh_period", "seconds after which a pod started from an image cache "
         "keeps pulling Always for its mutable tags (default 86400: 24 h; 0: never)",
         as_seconds),
    _Opt("volume_refresh_interval", "seconds between checks of the ConfigMaps, Secrets and tokens "
         "of pods annotated vk-eci.io/refresh-volumes=restart, and the least time between two "
         "refreshes (instance restarts) of one pod (default 60)", as_seconds),
)
_FILE_KEYS = {o.name: o for o in _OPTS} | {o.name.replace("_", "-"): o for o in _OPTS} | {
    "vswitch": next(o for o in _OPTS if o.name == "vswitches")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``vk-eci run`` flag. Defaults are None so that env and file can fill them."""
    parser.add_argument("--config", metavar="FILE",
                        help=f"YAML settings file (env {ENV_PREFIX}CONFIG); flags and env win")
    for opt in _OPTS:
        kwargs: dict[str, Any] = {"help": f"{opt.help} [env {opt.env}]", "default": None}
        kwargs.update(opt.flag_kwargs)
        flags = [opt.flag]
        if opt.name == "vswitches":
            flags = ["--vswitch", "--vswitches"]
        parser.add_argument(*flags, **kwargs)


def from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Merge flags, environment and the optional file into validated :class:`Settings`."""
    environ = os.environ if env is None else env
    merged: dict[str, Any] = {}
    config_path = getattr(args, "config", None) or environ.get(ENV_PREFIX + "CONFIG")
    if config_path:
        merged.update(_read_file(Path(config_path)))
    for opt in _OPTS:
        raw = environ.get(opt.env)
        if raw is not None and raw != "":
            merged[opt.name] = opt.parse(opt.name, raw)
    for opt in _OPTS:
        value = getattr(args, opt.name, None)
        if value is not None:
            merged[opt.name] = opt.parse(opt.name, value)
    return validate(merged)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--config: cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--config: {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of settings")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if str(key).lower().replace("_", "-") in _SECRET_KEYS:
            raise ConfigError(
                f"--config: {path}: {key!r} is not accepted; credentials come only from the "
                "Alibaba Cloud credential chain (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, RAM role, "
                "RRSA)")
        opt = _FILE_KEYS.get(str(key))
        if opt is None:
            raise ConfigError(f"--config: {path}: unknown setting {key!r}")
        out[opt.name] = opt.parse(opt.name, value)
    return out


_SECRET_KEYS = {"access-key-id", "access-key-secret", "accesskeyid", "accesskeysecret",
                "security-token", "access-key", "secret-key"}


def validate(values: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from parsed values, checking each; the first problem is raised."""
    v = check(values)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: val for k, val in v.items() if k in known})
