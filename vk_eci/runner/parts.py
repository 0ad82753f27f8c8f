"""The parts ``vk-eci run`` wires together, built from the settings: where groups go, the ECI
provider with its image-cache step, start-up adoption of legacy groups, the pod annotator and
the components started beside the node (kubelet API, ImageCache controller).

Kept apart from :mod:`vk_eci.runner.run`, which owns the order of start and stop and the
guarded tasks: these factories only construct, so each can be read (and changed) without the
supervision around them. The parts' own imports stay inside the factories, as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from vk_eci.cloud.placement.node import Placement
from vk_eci.config import Settings
from vk_eci.config_checks import ARCHITECTURES
from vk_eci.metrics import Metrics


def placement(settings: Settings) -> Placement:
    """Where the node's groups and the caches it builds go, from the flags."""
    return Placement(region_id=settings.region, vswitch_ids=tuple(settings.vswitches),
                     security_group_id=settings.security_group, zone_id=settings.zone)


async def service_access(settings: Settings, api: Any) -> Any:
    """The injected kube-proxy's settings (``ServiceAccess``), or None with
    ``--cluster-ip-mode none``: its image defaults to the API server's own release, and it
    reaches the API server where the node does unless told otherwise."""
    from kubernetes_asyncio import client

    from vk_eci.cloud.translation.context import ServiceAccess
    from vk_eci.cloud.translation.service_access import default_image
    from vk_eci.log import node_logger

    if settings.cluster_ip_mode == "none":
        return None
    image = settings.kube_proxy_image
    if not image:
        version = await client.VersionApi(api).get_code()
        image = default_image(str(version.git_version))
    configuration = api.configuration
    server = settings.kube_proxy_apiserver or str(configuration.host)
    if settings.kubeconfig is None and not settings.kube_proxy_apiserver:
        # In a cluster the node reaches the API server through the `kubernetes` Service,
        # which a group cannot reach before its own proxy runs.
        node_logger.warning("--cluster-ip-mode kube-proxy: the injected kube-proxy reaches the "
                            "API server at %s, the node's in-cluster address; set "
                            "--kube-proxy-apiserver to an address container groups reach",
                            server)
    ca = b""
    if configuration.ssl_ca_cert:
        ca = await asyncio.to_thread(Path(configuration.ssl_ca_cert).read_bytes)
    return ServiceAccess(image=image, server=server, ca_pem=ca, node_name=settings.node_name,
                         namespace=settings.kube_proxy_namespace,
                         token_seconds=int(settings.kube_proxy_token_lifetime))


def build_provider(settings: Settings, eci_client: Any, api: Any, recorder: Any,
                   metrics: Metrics, profile: Any = None, access: Any = None) -> Any:
    """The ECI provider (cloud side) wired to our recorder and pod resources, to the ECI
    profile's policy and network (``profile``: a ProfileWatch; docs/PROFILE.md) and to the
    Service access injected into every group (``access``; docs/BEHAVIOUR.md)."""
    from vk_eci.cloud.policy.gate import PolicyGate
    from vk_eci.cloud.provider import EciProvider
    from vk_eci.cloud.provider_state import ProviderSettings
    from vk_eci.cluster.pods.resources import KubePodResources

    # Matches EciProvider's signature (ProviderSettings, events=); was settings=/recorder=.
    provider_settings = ProviderSettings(
        placement=placement(settings), cluster_name=settings.cluster_name,
        node_name=settings.node_name,
        cpu_architecture=ARCHITECTURES[settings.architecture],
        cluster_dns=settings.cluster_dns, cluster_domain=settings.cluster_domain,
        refresh_interval=settings.status_sync_interval, service_access=access,
        volume_refresh_interval=settings.volume_refresh_interval)
    return EciProvider(eci_client, provider_settings, KubePodResources(api), events=recorder,
                       cache_decider=image_cache_chooser(settings, eci_client, recorder, metrics),
                       metrics=metrics, gate=None if profile is None else PolicyGate(
                           profile.current, profile.namespace_labels, node_gpus=settings.gpu,
                           single_tenant=settings.single_tenant))


def image_cache_chooser(settings: Settings, eci_client: Any, recorder: Any,
                        metrics: Metrics) -> Any:
    """The provider's image-cache step: catalog of ECI caches + per-pod choice."""
    from vk_eci.cloud.caches.autocreate import AutoCacheSettings, CacheBuilder
    from vk_eci.cloud.caches.catalog import CacheCatalog
    from vk_eci.cloud.caches.decider import PodCacheChooser
    from vk_eci.cloud.caches.decision import CacheChoiceSettings
    from vk_eci.cloud.caches.provenance import registries_of_servers
    from vk_eci.cloud.caches.pull_policy import PullPolicyMode

    # min_relist_age: how fresh a listing an automatic miss may ask for.
    catalog = CacheCatalog(eci_client, metrics=metrics,
                           resync_interval=settings.imagecache_resync_interval,
                           min_relist_age=settings.imagecache_min_relist_age)
    # Constrained pods that miss get a cache built by the node (docs/IMAGE_CACHES.md), placed
    # as pods are.
    builder = CacheBuilder(eci_client, catalog, AutoCacheSettings(
        placement=placement(settings), cluster_name=settings.cluster_name))
    return PodCacheChooser(catalog, recorder, metrics=metrics, settings=CacheChoiceSettings(
        pull_policy_mode=PullPolicyMode.parse(settings.image_pull_policy),
        auto_create_on_miss=settings.imagecache_auto_create,
        private_registries=registries_of_servers(settings.imagecache_private_registries),
        refresh_period=settings.imagecache_refresh_period),
        builder=builder)


def legacy_adopter(settings: Settings, eci_client: Any) -> Any:
    """Start-up adoption of this node's pods' groups tagged with the old default cluster
    name (cloud/groups/legacy.py); returns the pod UIDs adopted."""
    from vk_eci.cloud.groups.legacy import adopt_legacy_groups

    async def adopt(pods: Mapping[str, tuple[str, str]]) -> list[str]:
        done = await adopt_legacy_groups(
            eci_client, legacy_cluster=settings.legacy_cluster_name,
            cluster=settings.cluster_name, node=settings.node_name, pods=pods)
        return list(done.adopted.values())

    return adopt

def kube_annotator(api: Any) -> Callable[[Any, Mapping[str, str]], Awaitable[None]]:
    """``annotate(pod, annotations)``: merge-patch annotations onto a pod (image-cache choice)."""
    from kubernetes_asyncio import client

    core = client.CoreV1Api(api)

    async def annotate(pod: Any, annotations: Mapping[str, str]) -> None:
        body = {"metadata": {"annotations": dict(annotations)}}
        await core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace, body)

    return annotate


def optional_components(settings: Settings, api: Any, eci_client: Any, metrics: Metrics,
                        cache_observer: Any = None, cache_api: Any = None,
                        grants: Any = None,
                        pod_uid: Callable[[str, str], str | None] | None = None,
                        pod_ended: Callable[[str, str], bool] | None = None,
                        on_leading: Callable[[bool], None] | None = None,
                        ) -> list[tuple[str, Coroutine[Any, Any, None]]]:
    """Components started beside the node, each an object with ``async run()``.

    The kubelet HTTPS API (docs/KUBELET_API.md, ``vk_eci.kubelet``) listens on
    ``settings.kubelet_port``.
    """
    out: list[tuple[str, Coroutine[Any, Any, None]]] = []
    # kubelet API: logs, exec and stats of this node's pods, read from ECI (owner: kubelet).
    from vk_eci.cloud.pod_io import EciPodIO
    from vk_eci.cluster.node.controller import node_ip
    from vk_eci.kubelet.server import KubeletServer

    # The pod's UID from the node's informer: the kubelet API reaches only the group whose
    # tags name this very pod (docs/SECURITY.md, item 1).
    pod_io = EciPodIO(eci_client, cluster_name=settings.cluster_name,
                      node_name=settings.node_name, pod_uid=pod_uid, pod_ended=pod_ended)
    kubelet = KubeletServer.from_settings(settings, api, pod_io, node_ip(settings), metrics)
    out.append(("kubelet-api", kubelet.run()))
    if settings.imagecache_controller:
        from vk_eci.cluster.imagecaches.context import ImageCacheSettings
        from vk_eci.cluster.imagecaches.controller import ImageCacheController
        from vk_eci.cluster.imagecaches.secrets import SecretPolicy

        # The leader Lease from the flags (the chart's RBAC grants exactly that one), and where
        # ECI runs the cache builder: CreateImageCache requires a security group and vSwitch.
        cache_settings = ImageCacheSettings(
            lease_namespace=settings.imagecache_lease_namespace,
            lease_name=settings.imagecache_lease_name, placement=placement(settings),
            cluster_name=settings.cluster_name,
            legacy_cluster_name=settings.legacy_cluster_name,
            secret_policy=SecretPolicy(
                shared_namespaces=frozenset(settings.imagecache_shared_pull_namespaces),
                trust_admission=settings.imagecache_trust_admission),
            grants=grants)
        controller = ImageCacheController(cache_api or api, eci_client,
                                          identity=settings.identity,
                                          settings=cache_settings, metrics=metrics,
                                          observer=cache_observer, on_leading=on_leading)
        out.append(("imagecache-controller", controller.run()))
    return out


async def admission_webhook(settings: Settings, profile: Any, api: Any) -> None:
    """The admission webhook (docs/PROFILE.md) on ``--webhook-port``, until cancelled: the
    profile's selectors and policy read from ``profile`` (a ProfileWatch) at each request;
    ImageCache pull secrets judged for the requesting user with SubjectAccessReviews (through
    ``api``, docs/SECURITY.md "ImageCache pull secrets")."""
    import asyncio

    from kubernetes_asyncio import client

    from vk_eci.admission.review import Webhook
    from vk_eci.admission.server import serve
    from vk_eci.cluster.imagecaches.secrets import admission_verdict
    from vk_eci.cluster.imagecaches.spec import spec_from_object
    from vk_eci.cluster.node.controller import TAINT_KEY, node_ip, node_taint
    from vk_eci.kubelet.tls import server_context, watch_certificate

    def image_cache_check(obj: Mapping[str, Any]) -> str | None:
        try:
            spec_from_object(obj)
        except ValueError as e:  # the secrets' own checks belong to the controller
            return str(e)
        return None

    authz: Any = client.AuthorizationV1Api(api)  # takes the body as a dict, too
    shared = frozenset(settings.imagecache_shared_pull_namespaces)

    async def review(body: dict[str, Any]) -> Mapping[str, Any]:
        answer = await authz.create_subject_access_review(body=body)
        return dict(api.sanitize_for_serialization(answer))

    async def image_cache_secrets(request: Mapping[str, Any]
                                  ) -> tuple[str | None, Mapping[str, str]]:
        return await admission_verdict(review, request, shared)

    taint = node_taint()
    hook = Webhook(profile.current, profile.namespace_labels, settings.node_name,
                   {"kubernetes.io/hostname": settings.node_name},
                   {"key": TAINT_KEY, "operator": "Exists", "effect": taint["effect"]},
                   node_gpus=settings.gpu, single_tenant=settings.single_tenant,
                   image_cache_check=image_cache_check,
                   image_cache_secrets=image_cache_secrets)
    ctx = await server_context(cert_file=settings.webhook_tls_cert_file,
                               key_file=settings.webhook_tls_key_file, client_ca=None,
                               node_name=settings.node_name, hosts=[node_ip(settings)])
    runner = await serve(hook, settings.kubelet_address, settings.webhook_port, ctx)
    try:
        cert, key = settings.webhook_tls_cert_file, settings.webhook_tls_key_file
        if cert is not None and key is not None:
            # A renewed certificate (the chart makes one at each upgrade) is served without
            # a restart, as the kubelet API's is.
            await watch_certificate(ctx, cert, key)  # never returns
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def fleet_member(api: Any, settings: Settings, eci_client: Any, metrics: Metrics) -> Any:
    """This process's member Lease among every process of its ECI account in the cluster,
    setting the client's share of the account's limits (docs/RELIABILITY.md "One account
    budget"). Unelected or standby, every process spends ECI calls, so each is a member; a hot
    standby at a small weight (:class:`FleetRoles` raises it while it leads)."""
    from vk_eci.cloud.api.credentials import caller_identity
    from vk_eci.cluster.fleet.account import account_key
    from vk_eci.cluster.fleet.member import FleetMember
    from vk_eci.cluster.fleet.shares import STANDBY_WEIGHT

    account = account_key(settings.region, settings.eci_account or caller_identity())
    return FleetMember(api, namespace=settings.eci_account_lease_namespace, account=account,
                       identity=settings.identity, node_name=settings.node_name,
                       set_share=eci_client.set_rate_share, metrics=metrics,
                       weight=STANDBY_WEIGHT if settings.node_leader_election else 1.0)


class FleetRoles:
    """What this process leads (its node, the cluster's ImageCache controller): with any, its
    fleet weight is 1; a standby leading nothing keeps its small weight. ``member`` is None
    when the account is not shared."""

    def __init__(self, member: Any, standby: bool) -> None:
        self.member, self.standby = member, standby
        self.held: set[str] = set()

    def leading(self, role: str, now: bool) -> None:
        from vk_eci.cluster.fleet.shares import STANDBY_WEIGHT

        if now:
            self.held.add(role)
        else:
            self.held.discard(role)
        if self.member is not None:
            self.member.set_weight(1.0 if self.held or not self.standby else STANDBY_WEIGHT)
