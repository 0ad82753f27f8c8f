"""A pod's ``dnsPolicy`` + ``dnsConfig`` → ECI's ``DnsPolicy`` + ``DnsConfig``, as the kubelet
builds resolv.conf (``pkg/kubelet/network/dns``).

ECI knows two policies: ``Default`` (the instance's own resolvers, i.e. the VPC's) and ``None``
(exactly what ``DnsConfig`` says). So:

- ``ClusterFirst`` (the default) and ``ClusterFirstWithHostNet`` → ``None`` with
  ``nameserver <--cluster-dns…>``, ``search <ns>.svc.<domain> svc.<domain> <domain>``,
  ``options ndots:5``, then the pod's own ``dnsConfig`` appended (duplicates dropped, a pod option
  replacing the default of the same name). Without ``--cluster-dns`` the kubelet falls back to
  ``Default`` with a ``MissingClusterDNS`` Warning; so does the node.
- ``Default`` → ``Default`` (+ the pod's ``dnsConfig``, if any).
- ``None`` → ``None`` with the pod's ``dnsConfig`` only.
"""

from __future__ import annotations

from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.translation.context import PodWarning, TranslateContext, Warnings

DEFAULT_OPTIONS = (("ndots", "5"),)
_CLUSTER = ("ClusterFirst", "ClusterFirstWithHostNet")


def _merge(base: list[str], extra: list[str]) -> list[str]:
    return list(dict.fromkeys([*base, *extra]))


def apply_dns(pod: Any, ctx: TranslateContext, req: Any, notes: Warnings) -> None:
    """Set ``req.dns_policy`` / ``req.dns_config`` for ``pod`` (see the module docstring)."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    if policy not in (*_CLUSTER, "Default", "None"):
        raise InvalidInput(f"pod dnsPolicy {policy!r}",
                           "not one of ClusterFirst, ClusterFirstWithHostNet, Default, None")
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy in _CLUSTER and not ctx.cluster_dns:
        notes.append(PodWarning("MissingClusterDNS", f"the node has no --cluster-dns and cannot "
                                f"give the pod the {policy!r} policy: falling back to 'Default'"))
        policy = "Default"
    if policy in _CLUSTER:
        domain = ctx.cluster_domain.strip(".")
        ns = pod.metadata.namespace or "default"
        servers = list(ctx.cluster_dns)
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        options = dict(DEFAULT_OPTIONS)
    cfg = spec.dns_config
    if cfg is not None:
        servers = _merge(servers, list(cfg.nameservers or []))
        searches = _merge(searches, list(cfg.searches or []))
        for opt in cfg.options or []:
            options[opt.name] = opt.value
    req.dns_policy = "Default" if policy == "Default" else "None"
    if servers or searches or options:
        req.dns_config = eci.CreateContainerGroupRequestDnsConfig(
            name_server=servers or None, search=searches or None,
            option=[eci.CreateContainerGroupRequestDnsConfigOption(name=k, value=v)
                    for k, v in options.items()] or None)
