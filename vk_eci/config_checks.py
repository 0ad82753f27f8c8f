"""The checks of ``vk-eci run``'s settings as a whole, before the node contacts anything.

:func:`check` takes the parsed values (flags over environment over file) and returns them
completed and normalised (an endpoint derived from the region, lower-cased modes, default
Lease names), or raises :class:`vk_eci.config_values.ConfigError` for the first problem:
required settings, ids and names ECI or Kubernetes would refuse, values that contradict each
other. Apart from :mod:`vk_eci.config` (the table of settings), which builds ``Settings`` from
what this returns (:func:`vk_eci.config.validate`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any

from vk_eci.config_values import (
    ConfigError,
    env_of,
    flag_of,
    parse_quantity,
    plain_http_refusal,
    split_hostport,
)

LOG_LEVELS = ("debug", "info", "warning", "error")
ARCHITECTURES = {"amd64": "AMD64", "arm64": "ARM64"}  # kubernetes.io/arch → CpuArchitecture
PULL_POLICY_MODES = ("rewrite", "override", "warn", "off")  # override = rewrite (older name)
STATUS_SYNC_MODES = ("incremental", "full")
ADVISOR_MODES = ("off", "suggest", "apply")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]{2,}-[a-z0-9-]+$")


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parsed values checked, completed and normalised; the first problem is raised."""
    v = dict(values)
    for required in ("region", "vswitches", "security_group"):
        if not v.get(required):
            flag = "--vswitch" if required == "vswitches" else flag_of(required)
            raise ConfigError(f"{flag} is required (or set {env_of(required)})")
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
        split_hostport("eci-endpoint", endpoint)
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
        split_hostport("metrics-addr", v["metrics_addr"])
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
            raise ConfigError(f"{flag_of(name)}: {v[name]} must be a positive number of seconds")
    if v.get("status_poll_fast_interval", 0.25) > v.get("status_poll_interval", 1.0):
        raise ConfigError("--status-poll-fast-interval: must not be longer than "
                          "--status-poll-interval")
    if v.get("lease_renew_interval", 10.0) >= v.get("lease_duration", 40.0):
        raise ConfigError("--lease-renew-interval: must be shorter than --lease-duration "
                          "or the lease expires between renewals")
    for name in ("pod_workers", "max_retries"):
        if name in v and v[name] < 1:
            raise ConfigError(f"{flag_of(name)}: {v[name]} must be at least 1")
    if v.get("node_ip"):
        try:
            ipaddress.ip_address(v["node_ip"])
        except ValueError:
            raise ConfigError(f"--node-ip: {v['node_ip']!r} is not an IP address") from None
    for name in ("kubelet_max_sessions", "kubelet_max_sessions_per_namespace",
                 "kubelet_max_sessions_per_user"):
        if name in v and v[name] < 1:
            raise ConfigError(f"{flag_of(name)}: {v[name]} must be at least 1")
    for name in ("kubelet_exec_idle_timeout", "kubelet_exec_max_duration"):
        if name in v and not (v[name] >= 0 and math.isfinite(v[name])):
            raise ConfigError(f"{flag_of(name)}: {v[name]} must be 0 (off) or a positive "
                              "number of seconds")
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
    _check_advisor(v, node)
    # Leader Leases: a namespace is a DNS label, a Lease name a DNS subdomain.
    v.setdefault("node_leader_lease_name", "")
    v["node_leader_lease_name"] = v["node_leader_lease_name"] or f"vk-eci-node-{node}"[:253]
    for prefix, default in (("imagecache", "vk-eci-imagecache-controller"),
                            ("node_leader", v["node_leader_lease_name"])):
        lease_ns = v.get(f"{prefix}_lease_namespace", "kube-system")
        if len(lease_ns) > 63 or not _DNS_LABEL.match(lease_ns):
            raise ConfigError(f"{flag_of(prefix + '_lease_namespace')}: {lease_ns!r} is not a "
                              "namespace name (lower-case DNS label, at most 63 characters)")
        lease_name = v.get(f"{prefix}_lease_name", default)
        if len(lease_name) > 253 or not _DNS_SUBDOMAIN.match(lease_name):
            raise ConfigError(f"{flag_of(prefix + '_lease_name')}: {lease_name!r} is not a Lease "
                              "name (lower-case DNS subdomain, at most 253 characters)")
    identity = v.get("identity", "")
    if len(identity) > 128 or any(c.isspace() or c == "/" for c in identity):
        raise ConfigError(f"--identity: {identity!r} must be at most 128 characters without "
                          "spaces or '/'")
    if bool(v.get("tls_cert_file")) != bool(v.get("tls_key_file")):
        raise ConfigError("--tls-cert-file and --tls-key-file go together: give both or neither "
                          "(neither: a self-signed certificate is made at start)")
    v["vswitches"] = tuple(v["vswitches"])
    _check_cluster_ip(v)
    return v


def _check_advisor(v: dict[str, Any], node: str) -> None:
    mode = str(v.get("imagecache_advisor", "off")).lower()
    if mode not in ADVISOR_MODES:
        raise ConfigError(f"--imagecache-advisor: {mode!r} must be one of "
                          f"{', '.join(ADVISOR_MODES)}")
    v["imagecache_advisor"] = mode
    for name in ("imagecache_advisor_interval", "imagecache_advisor_window",
                 "imagecache_advisor_save_interval"):
        if name in v and not v[name] > 0:
            raise ConfigError(f"{flag_of(name)}: {v[name]} must be a positive number of seconds")
    for name in ("imagecache_advisor_max_caches", "imagecache_advisor_max_gib"):
        if name in v and v[name] < 0:
            raise ConfigError(f"{flag_of(name)}: {v[name]} must not be negative")
    for name in ("imagecache_advisor_cost_per_gib_day", "imagecache_advisor_hit_overhead"):
        value = v.get(name, 0.0)
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"{flag_of(name)}: {value} must be a finite number, 0 or more")
    where = (v.get("imagecache_advisor_configmap")
             or "kube-system/" + f"vk-eci-advisor-{node}"[:253].rstrip("-."))
    namespace, sep, name = where.partition("/")
    if (not sep or len(namespace) > 63 or not _DNS_LABEL.match(namespace) or len(name) > 253
            or not _DNS_SUBDOMAIN.match(name)):
        raise ConfigError(f"--imagecache-advisor-configmap: {where!r} is not NAMESPACE/NAME "
                          "(a namespace name and a ConfigMap name)")
    v["imagecache_advisor_configmap"] = where
    lease = v.get("imagecache_advisor_lease") or ""
    namespace, sep, name = lease.partition("/")
    if lease and (not sep or not _DNS_LABEL.match(namespace) or len(name) > 253
                  or not _DNS_SUBDOMAIN.match(name)):
        raise ConfigError(f"--imagecache-advisor-lease: {lease!r} is not NAMESPACE/NAME")


CLUSTER_IP_MODES = ("kube-proxy", "none")


def _check_cluster_ip(v: dict[str, Any]) -> None:
    """The injected kube-proxy's settings (docs/BEHAVIOUR.md "Services and DNS")."""
    mode = str(v.get("cluster_ip_mode", "kube-proxy")).lower()
    if mode not in CLUSTER_IP_MODES:
        raise ConfigError(f"--cluster-ip-mode: {mode!r} must be one of "
                          f"{', '.join(CLUSTER_IP_MODES)}")
    v["cluster_ip_mode"] = mode
    namespace = v.get("kube_proxy_namespace", "kube-system")
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise ConfigError(f"--kube-proxy-namespace: {namespace!r} is not a namespace name "
                          "(lower-case DNS label, at most 63 characters)")
    server = v.get("kube_proxy_apiserver", "")
    if server and not server.startswith("https://"):
        raise ConfigError(f"--kube-proxy-apiserver: {server!r} must be an https:// URL")
    lifetime = v.get("kube_proxy_token_lifetime", 86400.0)
    if not 600 <= lifetime <= 2**31:
        raise ConfigError(f"--kube-proxy-token-lifetime: {lifetime} must be 600 seconds (the "
                          "API server's minimum) or more")
