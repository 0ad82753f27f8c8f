"""What translating one pod needs besides the pod: the node's placement and the resolved objects.

The cluster side fetches secrets, config maps, service variables and tokens (through
:class:`vk_eci.provider.PodResources`); :func:`references` says which ones a pod needs, and
:func:`gather` collects them into a :class:`TranslateContext`, so that translation itself stays a
pure function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.node import Placement
from vk_eci.provider import ClaimData, ConfigMapData, PodResources, SecretData

TokenKey = tuple[str | None, int | None]  # (audience, expirationSeconds) of a token source
# The pod annotation that opts a pod out of the injected kube-proxy ("false"; "true" default).
CLUSTER_IP_ANNOTATION = "vk-eci.io/cluster-ip"


@dataclass(frozen=True)
class PodWarning:
    """Something translation skipped, folded or could not honour: becomes a Warning event with
    the kubelet's ``reason`` (where it has one) and a log line."""

    reason: str
    message: str


Warnings = list[PodWarning]  # filled by the one translation pass


@dataclass(frozen=True)
class CacheDecision:
    """How a pod uses ECI image caches (filled in by image-cache selection; default: none).

    ``image_snapshot_id`` sends ``ImageSnapshotId`` (a chosen or explicit ``imc-…``);
    ``auto_match_image_cache`` sends ``AutoMatchImageCache=True`` (ECI matches server-side);
    ``pull_policy_overrides`` maps a container name (app or init) to the pull policy to send
    instead of the pod's (``Always`` → ``IfNotPresent`` when starting from a cache).
    """

    image_snapshot_id: str | None = None
    auto_match_image_cache: bool = False
    pull_policy_overrides: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceAccess:
    """How the node gives its groups Service access through an injected kube-proxy
    (:mod:`vk_eci.cloud.translation.service_access`); absent from the context: not at all."""

    image: str  # the kube-proxy image, of the cluster's own version by default
    server: str  # the API server's URL as a container group reaches it
    ca_pem: bytes  # the cluster CA that signed the API server's certificate
    node_name: str  # the proxy's --hostname-override, and the Node its token is bound to
    namespace: str  # where the proxy's service account lives
    token_seconds: int = 86400
    account: str = "vk-eci-kube-proxy"  # the service account the chart creates


def proxy_wanted(pod: Any, access: ServiceAccess | None) -> bool:
    """Whether ``pod``'s group gets the node's kube-proxy: the node gives it, the pod did not
    opt out, and its containers do not share a process namespace (they could read the
    proxy's credential through /proc). Raises on an opt-out value other than true/false."""
    if access is None:
        return False
    value = (pod.metadata.annotations or {}).get(CLUSTER_IP_ANNOTATION, "true").strip().lower()
    if value not in ("true", "false"):
        raise InvalidInput(f"annotation {CLUSTER_IP_ANNOTATION}={value!r}",
                           'must be "true" or "false"')
    return value == "true" and not pod.spec.share_process_namespace


@dataclass(frozen=True)
class TranslateContext:
    """Everything besides the pod that its container-group request is made from."""

    placement: Placement
    cluster_name: str
    node_name: str
    cpu_architecture: str | None = None  # AMD64 | ARM64: the node's (one node per architecture)
    # Objects of the pod's namespace, by name; a name absent here does not exist.
    secrets: Mapping[str, SecretData] = field(default_factory=dict)
    config_maps: Mapping[str, ConfigMapData] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)
    service_account_tokens: Mapping[TokenKey, str] = field(default_factory=dict)
    cache: CacheDecision = field(default_factory=CacheDecision)
    # Names whose read failed for another reason than "not found" (FailedToRead… events).
    unreadable_secrets: frozenset[str] = frozenset()
    unreadable_config_maps: frozenset[str] = frozenset()
    claims: Mapping[str, ClaimData] = field(default_factory=dict)  # absent: no such claim
    # The kubelet's --cluster-dns / --cluster-domain (dnsPolicy ClusterFirst).
    cluster_dns: Sequence[str] = ()
    cluster_domain: str = "cluster.local"
    # The injected kube-proxy (None: --cluster-ip-mode none) and the token gathered for it.
    service_access: ServiceAccess | None = None
    proxy_token: str | None = None


@dataclass(frozen=True)
class References:
    """Names of the objects a pod refers to (in its own namespace)."""

    secrets: frozenset[str] = frozenset()
    config_maps: frozenset[str] = frozenset()
    tokens: frozenset[TokenKey] = frozenset()
    service_links: bool = False
    claims: frozenset[str] = frozenset()


def _containers(pod: Any) -> list[Any]:
    spec = pod.spec
    return list(spec.init_containers or []) + list(spec.containers or [])


def references(pod: Any) -> References:
    """Every secret, config map and token the pod's env, volumes and pull secrets use."""
    secrets: set[str] = {s.name for s in (pod.spec.image_pull_secrets or []) if s.name}
    config_maps: set[str] = set()
    tokens: set[TokenKey] = set()
    for c in _containers(pod):
        for env in c.env or []:
            src = env.value_from
            if src is None:
                continue
            if src.secret_key_ref is not None and src.secret_key_ref.name:
                secrets.add(src.secret_key_ref.name)
            if src.config_map_key_ref is not None and src.config_map_key_ref.name:
                config_maps.add(src.config_map_key_ref.name)
        for env_from in c.env_from or []:
            if env_from.secret_ref is not None and env_from.secret_ref.name:
                secrets.add(env_from.secret_ref.name)
            if env_from.config_map_ref is not None and env_from.config_map_ref.name:
                config_maps.add(env_from.config_map_ref.name)
    claims: set[str] = set()
    for vol in pod.spec.volumes or []:
        if vol.persistent_volume_claim is not None and vol.persistent_volume_claim.claim_name:
            claims.add(vol.persistent_volume_claim.claim_name)
        if vol.secret is not None and vol.secret.secret_name:
            secrets.add(vol.secret.secret_name)
        if vol.config_map is not None and vol.config_map.name:
            config_maps.add(vol.config_map.name)
        if vol.projected is not None:
            for source in vol.projected.sources or []:
                if source.secret is not None and source.secret.name:
                    secrets.add(source.secret.name)
                if source.config_map is not None and source.config_map.name:
                    config_maps.add(source.config_map.name)
                sat = source.service_account_token
                if sat is not None:
                    tokens.add((sat.audience, sat.expiration_seconds))
    links = pod.spec.enable_service_links is not False  # Kubernetes defaults it to true
    return References(frozenset(secrets), frozenset(config_maps), frozenset(tokens), links,
                      frozenset(claims))


async def gather(pod: Any, resources: PodResources, base: TranslateContext) -> TranslateContext:
    """``base`` with the objects ``pod`` refers to fetched through ``resources``."""
    ns = pod.metadata.namespace or "default"
    refs = references(pod)
    secret_names = sorted(refs.secrets)
    cm_names = sorted(refs.config_maps)
    claim_names = sorted(refs.claims)
    token_keys = sorted(refs.tokens, key=lambda k: (k[0] or "", k[1] or 0))
    # A secret or config map that cannot be read (API error other than 404) does not fail the
    # whole gather: translation names it in a FailedToRead… event, as the virtual-kubelet does.
    results = await asyncio.gather(
        asyncio.gather(*(resources.secret(ns, n) for n in secret_names),
                       return_exceptions=True),
        asyncio.gather(*(resources.config_map(ns, n) for n in cm_names),
                       return_exceptions=True),
        asyncio.gather(*(resources.service_account_token(pod, a, e) for a, e in token_keys)),
        resources.service_env(ns) if refs.service_links else _empty(),
        asyncio.gather(*(resources.persistent_volume_claim(ns, n) for n in claim_names)),
        _proxy_token(pod, resources, base.service_access),
    )
    secrets = {n: s for n, s in zip(secret_names, results[0], strict=True)
               if isinstance(s, SecretData)}
    cms = {n: c for n, c in zip(cm_names, results[1], strict=True)
           if isinstance(c, ConfigMapData)}
    tokens = dict(zip(token_keys, results[2], strict=True))
    return replace(base, secrets=secrets, config_maps=cms, service_account_tokens=tokens,
                   service_env=dict(results[3]),
                   unreadable_secrets=_failed(secret_names, results[0]),
                   unreadable_config_maps=_failed(cm_names, results[1]),
                   claims={n: c for n, c in zip(claim_names, results[4], strict=True)
                           if c is not None},
                   proxy_token=results[5])


async def _proxy_token(pod: Any, resources: PodResources,
                       access: ServiceAccess | None) -> str | None:
    if access is None or not proxy_wanted(pod, access):
        return None
    return await resources.proxy_token(access.namespace, access.account, access.node_name,
                                       access.token_seconds)


def _failed(names: Sequence[str], results: Sequence[object]) -> frozenset[str]:
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancellation and the like are not a failed read
    return frozenset(n for n, r in zip(names, results, strict=True) if isinstance(r, Exception))


async def _empty() -> Mapping[str, str]:
    return {}
