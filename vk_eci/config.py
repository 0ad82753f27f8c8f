"""Typed settings of ``vk-eci run``: flags, ``VK_ECI_*`` environment variables, a YAML file.

Precedence is flag > environment > file > default, decided per setting. Everything is validated
here, before the node contacts anything, and a bad value is a :class:`ConfigError` naming the
setting and the reason. Credentials are deliberately absent: they come only from Alibaba's
credential chain (environment, RAM role, RRSA), never from a flag or this file.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "VK_ECI_"
LOG_LEVELS = ("debug", "info", "warning", "error")
ARCHITECTURES = {"amd64": "AMD64", "arm64": "ARM64"}  # kubernetes.io/arch → CpuArchitecture
PULL_POLICY_MODES = ("rewrite", "override", "warn", "off")  # override = rewrite
STATUS_SYNC_MODES = ("incremental", "full")
ADVISOR_MODES = ("off", "suggest", "apply")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]{2,}-[a-z0-9-]+$")
# A bracketed host may be IPv6 or IPv4 (the chart writes "[$(POD_IP)]:port" for either).
_HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]*|\[[0-9a-fA-F:.]+\]):(?P<port>\d{1,5})$")
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting and the reason."""


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
    node_ip: str = ""  # empty: $POD_IP, else a specific --kubelet-address, else 127.0.0.1
    # kubelet API TLS: serving cert/key files (absent: self-signed at start) and the
    # CA of client certificates (the API server's kubelet client cert); absent: tokens only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None

    @property
    def metrics_host_port(self) -> tuple[str, int]:
        host, port = _split_hostport("metrics-addr", self.metrics_addr)
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
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _str(name: str, value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{_flag(name)}: expected a string, got {type(value).__name__}")
    return str(value).strip()


def _int(name: str, value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{_flag(name)}: {value!r} is not an integer") from None


def _float(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        text = str(value).strip()
        return float(text[:-1]) if text.endswith("s") else float(text)
    except ValueError:
        raise ConfigError(f"{_flag(name)}: {value!r} is not a number of seconds") from None


def _number(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{_flag(name)}: {value!r} is not a number") from None


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{_flag(name)}: {value!r} is not a boolean (true/false)")


def _list(name: str, value: Any) -> tuple[str, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in _str(name, item).split(",") if p.strip())
    return tuple(out)


def _labels(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): _str(name, v) for k, v in value.items()}
    out: dict[str, str] = {}
    for item in _list(name, value):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{_flag(name)}: {item!r} is not key=value")
        out[key] = val
    return out


def _rates(name: str, value: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, raw in _labels(name, value).items():
        try:
            rate = float(raw)
        except ValueError:
            raise ConfigError(f"{_flag(name)}: {key}={raw!r}: the per-minute rate must be a "
                              "number") from None
        action, at, budget = key.partition("@")
        # ACTION@interactive: the share of kubectl logs/exec (cloud/api/ratelimit.py), which must
        # shrink with the node's own when the account's quota is smaller (or shared).
        if rate < 0 or not action.isalnum() or (at and budget != "interactive"):
            raise ConfigError(f"{_flag(name)}: {key}={raw!r} must be ACTION=PER_MINUTE or "
                              "ACTION@interactive=PER_MINUTE with a rate of 0 (unlimited) "
                              "or more")
        out[key] = rate
    return out


def _path(name: str, value: Any) -> Path:
    return Path(_str(name, value)).expanduser()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


_OPTS: tuple[_Opt, ...] = (
    _Opt("kubeconfig", "kubeconfig file (default: in-cluster config)", _path),
    _Opt("node_name", "name of the virtual Node (default virtual-kubelet)", _str),
    _Opt("region", "ECI region id, e.g. cn-hangzhou (required)", _str),
    _Opt("zone", "ECI zone id, e.g. cn-hangzhou-h (topology label; optional)", _str),
    _Opt("vswitches", "vSwitch id for container groups; repeat or comma-separate (required)",
         _list, {"action": "append", "dest": "vswitches", "metavar": "VSW"}),
    _Opt("security_group", "security group id for container groups (required)", _str),
    _Opt("cluster_name", "cluster name tagged on every container group and cache (default: "
         "k8s-<UID of the kube-system namespace>, unique per cluster)", _str),
    _Opt("cluster_dns", "cluster DNS server IP for ClusterFirst pods; repeat or comma-separate "
         "(default: none, pods fall back to ECI's resolvers with a MissingClusterDNS Warning)",
         _list, {"action": "append", "metavar": "IP"}),
    _Opt("cluster_domain", "cluster domain of the pods' DNS search path (default "
         "cluster.local)", _str),
    _Opt("eci_endpoint", "ECI API endpoint host[:port] (default eci.<region>.aliyuncs.com)",
         _str),
    _Opt("eci_protocol", "https (default) or http (only for the local emulator)", _str),
    _Opt("insecure_eci_endpoint", "allow --eci-protocol http to an endpoint that is not "
         "loopback (requests carry registry passwords and secrets in clear text)", _bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("cpu", "node cpu capacity (default 1000)", _str),
    _Opt("memory", "node memory capacity (default 4Ti)", _str),
    _Opt("pods", "node pod capacity (default 1000)", _int),
    _Opt("gpu", "node nvidia.com/gpu capacity (default 0: GPU pods do not schedule here)",
         _int),
    _Opt("ephemeral_storage", "node ephemeral-storage capacity (default 40Ti)", _str),
    _Opt("architecture", "amd64 (default) or arm64: the node's kubernetes.io/arch and the "
         "CpuArchitecture of its container groups (one node per architecture)", _str),
    _Opt("kubelet_port", "kubelet API port advertised on the Node (default 10250)", _int),
    _Opt("kubelet_address", "IP address the kubelet API listens on (default 0.0.0.0)", _str),
    _Opt("kubelet_max_sessions", "open kubectl logs -f / exec sessions at most on the node "
         "(default 64; more are refused with 429)", _int),
    _Opt("kubelet_max_sessions_per_namespace", "open sessions at most per namespace of the "
         "target pod (default 16)", _int),
    _Opt("kubelet_max_sessions_per_user", "open sessions at most per token-authenticated "
         "caller (default 8)", _int),
    _Opt("metrics_addr", "host:port of the Prometheus /metrics server (default 0.0.0.0:10255)",
         _str),
    _Opt("log_level", "debug, info (default), warning or error", _str),
    _Opt("lease_duration", "node Lease duration in seconds (default 40)", _float),
    _Opt("lease_renew_interval", "seconds between Lease renewals (default 10)", _float),
    _Opt("node_status_interval", "seconds between full Node status updates (default 60)",
         _float),
    _Opt("status_sync_interval", "seconds between full listings in --status-sync-mode full "
         "(default 5)", _float),
    _Opt("status_sync_mode", "incremental (default: ask ECI what changed) or full (list "
         "every group each cycle)", _str),
    _Opt("status_poll_interval", "seconds between polls for changed statuses (default 1)",
         _float),
    _Opt("status_poll_fast_interval", "seconds between those polls while a pod starts or "
         "stops (default 0.25)", _float),
    _Opt("status_resync_interval", "seconds between full listings that reconcile missed "
         "changes and vanished groups in incremental mode (default 60)", _float),
    _Opt("health_timeout", "seconds the ECI health call may take (default 5)", _float),
    _Opt("pod_workers", "pods worked on at once (default 32)", _int),
    _Opt("max_retries", "retries of a failing pod before giving up (default 15)", _int),
    _Opt("imagecache_controller", "run the ImageCache controller (default on)", _bool,
         {"action": argparse.BooleanOptionalAction}),
    _Opt("image_pull_policy", "Always→IfNotPresent for cached pods: rewrite (default), warn, off",
         _str),
    _Opt("imagecache_auto_create", "on an automatic-match miss send AutoMatchImageCache "
         "(default on)", _bool, {"action": argparse.BooleanOptionalAction}),
    _Opt("imagecache_resync_interval", "seconds between full image-cache re-syncs "
         "(default 60)", _float),
    _Opt("imagecache_min_relist_age", "an automatic-match miss re-lists the image caches unless "
         "a listing began this many seconds ago (default 5)", _float),
    _Opt("imagecache_lease_namespace", "namespace of the ImageCache controller's leader "
         "Lease (default kube-system)", _str),
    _Opt("imagecache_lease_name", "name of the ImageCache controller's leader Lease "
         "(default vk-eci-imagecache-controller)", _str),
    _Opt("imagecache_advisor", "the cache advisor: off (default), suggest (the plan as Node "
         "events, metrics and a log line) or apply (creates, updates and retires ImageCache "
         "objects labelled eci.vk-eci.io/advisor; never touches others)", _str),
    _Opt("imagecache_advisor_interval", "seconds between the advisor's plans (default 300)",
         _float),
    _Opt("imagecache_advisor_window", "seconds over which observed demand decays (default "
         "21600: 6 h)", _float),
    _Opt("imagecache_advisor_max_caches", "caches the advisor may plan at most (default 10)",
         _int),
    _Opt("imagecache_advisor_max_gib", "GiB of cache disk the advisor may plan at most "
         "(default 2048)", _int),
    _Opt("imagecache_advisor_cost_per_gib_day", "pull seconds per day that one GiB-day of "
         "cache must save to be worth it (default 1)", _number),
    _Opt("imagecache_advisor_hit_overhead", "seconds a pod started from a cache spends "
         "attaching it, subtracted from every hit when planning (default 2)", _number),
    _Opt("imagecache_advisor_configmap", "NAMESPACE/NAME of the ConfigMap keeping the observed "
         "demand across restarts (default kube-system/vk-eci-advisor-<node name>)", _str),
    _Opt("imagecache_advisor_save_interval", "seconds between writes of that ConfigMap at "
         "most (default 60)", _float),
    _Opt("node_leader_election", "replicas of one node elect a leader; the others stand by "
         "warm (default off)", _bool, {"action": argparse.BooleanOptionalAction}),
    _Opt("node_leader_lease_namespace", "namespace of the node's leader Lease "
         "(default kube-system)", _str),
    _Opt("node_leader_lease_name", "name of the node's leader Lease "
         "(default vk-eci-node-<node name>)", _str),
    _Opt("identity", "this process's identity among the node's replicas (default $POD_NAME, "
         "else hostname-<random>)", _str),
    _Opt("eci_rate_limits", "client-side budget ACTION=PER_MINUTE over the defaults (0.85 x "
         "ECI's documented limits; 0 = unlimited), ACTION@interactive=PER_MINUTE for the share "
         "of kubectl logs/exec; repeat or comma-separate", _rates,
         {"action": "append", "metavar": "ACTION=PER_MINUTE"}),
    _Opt("labels", "extra node label key=value; repeat or comma-separate", _labels,
         {"action": "append", "metavar": "KEY=VALUE"}),
    _Opt("node_ip", "InternalIP address of the Node (default $POD_IP, else --kubelet-address "
         "when it is one specific address, else 127.0.0.1)", _str),
    _Opt("tls_cert_file", "kubelet API serving certificate (PEM; default: self-signed)", _path),
    _Opt("tls_key_file", "key of --tls-cert-file (PEM)", _path),
    _Opt("client_ca_file", "CA of client certificates accepted by the kubelet API, e.g. the "
         "cluster CA that signed the API server's kubelet client cert (default: none)", _path),
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
    v = dict(values)
    for required in ("region", "vswitches", "security_group"):
        if not v.get(required):
            opt = next(o for o in _OPTS if o.name == required)
            flag = "--vswitch" if required == "vswitches" else opt.flag
            raise ConfigError(f"{flag} is required (or set {opt.env})")
    if not _REGION.match(v["region"]):
        raise ConfigError(f"--region: {v['region']!r} is not a region id like cn-hangzhou")
    for vsw in v["vswitches"]:
        if not vsw.startswith("vsw-") or len(vsw) < 5:
            raise ConfigError(f"--vswitch: {vsw!r} is not a vSwitch id (vsw-…)")
    if not v["security_group"].startswith("sg-"):
        raise ConfigError(f"--security-group: {v['security_group']!r} is not a security group "
                          "id (sg-…)")
    node = v.get("node_name", "virtual-kubelet")
    if len(node) > 253 or not _DNS_SUBDOMAIN.match(node):
        raise ConfigError(f"--node-name: {node!r} is not a valid Node name "
                          "(lower-case DNS subdomain, at most 253 characters)")
    cluster = v.get("cluster_name", "")
    if len(cluster) > 128 or any(c.isspace() for c in cluster) or cluster.startswith(
            "acs:") or "http://" in cluster or "https://" in cluster:
        raise ConfigError(f"--cluster-name: {cluster!r} must be at most 128 characters "
                          "without spaces, http(s):// or an acs: prefix (an ECI tag value); "
                          "leave it empty to derive one from the kube-system namespace")
    protocol = v.get("eci_protocol", "https").lower()
    if protocol not in ("http", "https"):
        raise ConfigError(f"--eci-protocol: {protocol!r} must be http or https")
    v["eci_protocol"] = protocol
    endpoint = v.get("eci_endpoint") or f"eci.{v['region']}.aliyuncs.com"
    if "://" in endpoint or "/" in endpoint or not endpoint:
        raise ConfigError(f"--eci-endpoint: {endpoint!r} must be host[:port] without a scheme "
                          "(use --eci-protocol for http)")
    if ":" in endpoint:
        _split_hostport("eci-endpoint", endpoint)
    v["eci_endpoint"] = endpoint
    refused = plain_http_refusal(protocol, endpoint, bool(v.get("insecure_eci_endpoint")))
    if refused:
        raise ConfigError(refused)
    for name in ("cpu", "memory", "ephemeral_storage"):
        if name in v:
            parse_quantity(name, v[name])
    if v.get("gpu", 0) < 0:
        raise ConfigError(f"--gpu: {v['gpu']} must not be negative")
    arch = v.get("architecture", "amd64").lower()
    if arch not in ARCHITECTURES:
        raise ConfigError(f"--architecture: {arch!r} must be one of {', '.join(ARCHITECTURES)}")
    v["architecture"] = arch
    if v.get("pods", 1) < 1:
        raise ConfigError(f"--pods: {v['pods']} must be at least 1")
    port = v.get("kubelet_port", 10250)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--kubelet-port: {port} is not a TCP port (1-65535)")
    if "metrics_addr" in v and v["metrics_addr"] not in ("", "off"):
        _split_hostport("metrics-addr", v["metrics_addr"])
    level = v.get("log_level", "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level: {level!r} must be one of {', '.join(LOG_LEVELS)}")
    v["log_level"] = level
    mode = v.get("image_pull_policy", "rewrite").lower()
    if mode not in PULL_POLICY_MODES:
        raise ConfigError(f"--image-pull-policy: {mode!r} must be one of "
                          f"{', '.join(PULL_POLICY_MODES)}")
    v["image_pull_policy"] = mode
    sync_mode = v.get("status_sync_mode", "incremental").lower()
    if sync_mode not in STATUS_SYNC_MODES:
        raise ConfigError(f"--status-sync-mode: {sync_mode!r} must be one of "
                          f"{', '.join(STATUS_SYNC_MODES)}")
    v["status_sync_mode"] = sync_mode
    for name in ("lease_duration", "lease_renew_interval", "node_status_interval",
                 "status_sync_interval", "health_timeout", "imagecache_resync_interval",
                 "status_poll_interval", "status_poll_fast_interval", "status_resync_interval",
                 "imagecache_min_relist_age"):
        if name in v and not v[name] > 0:
            raise ConfigError(f"{_flag(name)}: {v[name]} must be a positive number of seconds")
    if v.get("status_poll_fast_interval", 0.25) > v.get("status_poll_interval", 1.0):
        raise ConfigError("--status-poll-fast-interval: must not be longer than "
                          "--status-poll-interval")
    if v.get("lease_renew_interval", 10.0) >= v.get("lease_duration", 40.0):
        raise ConfigError("--lease-renew-interval: must be shorter than --lease-duration "
                          "or the lease expires between renewals")
    for name in ("pod_workers", "max_retries"):
        if name in v and v[name] < 1:
            raise ConfigError(f"{_flag(name)}: {v[name]} must be at least 1")
    if v.get("node_ip"):
        try:
            ipaddress.ip_address(v["node_ip"])
        except ValueError:
            raise ConfigError(f"--node-ip: {v['node_ip']!r} is not an IP address") from None
    for name in ("kubelet_max_sessions", "kubelet_max_sessions_per_namespace",
                 "kubelet_max_sessions_per_user"):
        if name in v and v[name] < 1:
            raise ConfigError(f"{_flag(name)}: {v[name]} must be at least 1")
    for ip in v.get("cluster_dns") or ():
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ConfigError(f"--cluster-dns: {ip!r} is not an IP address") from None
    v["cluster_dns"] = tuple(v.get("cluster_dns") or ())
    domain = v.get("cluster_domain", "cluster.local").strip(".")
    if len(domain) > 253 or not _DNS_SUBDOMAIN.match(domain):
        raise ConfigError(f"--cluster-domain: {domain!r} is not a DNS domain "
                          "(lower-case DNS subdomain, at most 253 characters)")
    v["cluster_domain"] = domain
    if v.get("kubelet_address"):
        try:
            ipaddress.ip_address(v["kubelet_address"])
        except ValueError:
            raise ConfigError(f"--kubelet-address: {v['kubelet_address']!r} is not an IP "
                              "address") from None
    _validate_advisor(v, node)
    # Leader Leases: a namespace is a DNS label, a Lease name a DNS subdomain.
    v.setdefault("node_leader_lease_name", "")
    v["node_leader_lease_name"] = v["node_leader_lease_name"] or f"vk-eci-node-{node}"[:253]
    for prefix, default in (("imagecache", "vk-eci-imagecache-controller"),
                            ("node_leader", v["node_leader_lease_name"])):
        lease_ns = v.get(f"{prefix}_lease_namespace", "kube-system")
        if len(lease_ns) > 63 or not _DNS_LABEL.match(lease_ns):
            raise ConfigError(f"{_flag(prefix + '_lease_namespace')}: {lease_ns!r} is not a "
                              "namespace name (lower-case DNS label, at most 63 characters)")
        lease_name = v.get(f"{prefix}_lease_name", default)
        if len(lease_name) > 253 or not _DNS_SUBDOMAIN.match(lease_name):
            raise ConfigError(f"{_flag(prefix + '_lease_name')}: {lease_name!r} is not a Lease "
                              "name (lower-case DNS subdomain, at most 253 characters)")
    identity = v.get("identity", "")
    if len(identity) > 128 or any(c.isspace() or c == "/" for c in identity):
        raise ConfigError(f"--identity: {identity!r} must be at most 128 characters without "
                          "spaces or '/'")
    if bool(v.get("tls_cert_file")) != bool(v.get("tls_key_file")):
        raise ConfigError("--tls-cert-file and --tls-key-file go together: give both or neither "
                          "(neither: a self-signed certificate is made at start)")
    v["vswitches"] = tuple(v["vswitches"])
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: val for k, val in v.items() if k in known})


def _validate_advisor(v: dict[str, Any], node: str) -> None:
    mode = str(v.get("imagecache_advisor", "off")).lower()
    if mode not in ADVISOR_MODES:
        raise ConfigError(f"--imagecache-advisor: {mode!r} must be one of "
                          f"{', '.join(ADVISOR_MODES)}")
    v["imagecache_advisor"] = mode
    for name in ("imagecache_advisor_interval", "imagecache_advisor_window",
                 "imagecache_advisor_save_interval"):
        if name in v and not v[name] > 0:
            raise ConfigError(f"{_flag(name)}: {v[name]} must be a positive number of seconds")
    for name in ("imagecache_advisor_max_caches", "imagecache_advisor_max_gib"):
        if name in v and v[name] < 0:
            raise ConfigError(f"{_flag(name)}: {v[name]} must not be negative")
    for name in ("imagecache_advisor_cost_per_gib_day", "imagecache_advisor_hit_overhead"):
        value = v.get(name, 0.0)
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"{_flag(name)}: {value} must be a finite number, 0 or more")
    where = (v.get("imagecache_advisor_configmap")
             or "kube-system/" + f"vk-eci-advisor-{node}"[:253].rstrip("-."))
    namespace, sep, name = where.partition("/")
    if (not sep or len(namespace) > 63 or not _DNS_LABEL.match(namespace) or len(name) > 253
            or not _DNS_SUBDOMAIN.match(name)):
        raise ConfigError(f"--imagecache-advisor-configmap: {where!r} is not NAMESPACE/NAME "
                          "(a namespace name and a ConfigMap name)")
    v["imagecache_advisor_configmap"] = where


def parse_quantity(name: str, text: str) -> Decimal:
    """A Kubernetes quantity (``500m``, ``4Gi``, ``1000``) as a number; ConfigError if not."""
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ConfigError(f"{_flag(name)}: {text!r} is not a Kubernetes quantity (e.g. 1000, 4Ti)")
    try:
        value = Decimal(m["num"]) * _SUFFIX[m["suffix"]]
    except InvalidOperation:
        raise ConfigError(f"{_flag(name)}: {text!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{_flag(name)}: {text!r} must be positive")
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP or a name, no port) names this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_refusal(protocol: str, endpoint: str, insecure: bool) -> str | None:
    """Why plain http to ``endpoint`` (host[:port]) is refused, or None when it is fine."""
    if protocol != "http" or insecure:
        return None
    host = endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint
    if endpoint.startswith("[") and "]" in endpoint:
        host = endpoint[1:endpoint.index("]")]
    if is_loopback(host):
        return None
    return (f"--eci-protocol: http to {endpoint!r} is refused: only a loopback endpoint (the "
            "local emulator) may be spoken to in clear text, since requests carry registry "
            "passwords and secret volumes; use https, or --insecure-eci-endpoint to accept it")


def _split_hostport(name: str, text: str) -> tuple[str, int]:
    m = _HOSTPORT.match(text)
    if not m or not 0 <= int(m["port"]) <= 65535:
        raise ConfigError(f"--{name}: {text!r} is not host:port")
    return (m["host"].strip("[]") or "0.0.0.0"), int(m["port"])
