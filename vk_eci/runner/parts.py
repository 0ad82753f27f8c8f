"""The parts ``vk-eci run`` wires together, built from the settings: where groups go, the ECI
provider with its image-cache step, start-up adoption of legacy groups, the pod annotator and
the components started beside the node (kubelet API, ImageCache controller).

Kept apart from :mod:`vk_eci.runner.run`, which owns the order of start and stop and the
guarded tasks: these factories only construct, so each can be read (and changed) without the
supervision around them. The parts' own imports stay inside the factories, as they were.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from vk_eci.cloud.placement.node import Placement
from vk_eci.config import Settings
from vk_eci.config_checks import ARCHITECTURES
from vk_eci.metrics import Metrics


def placement(settings: Settings) -> Placement:
    """Where the node's groups and the caches it builds go, from the flags."""
    return Placement(region_id=settings.region, vswitch_ids=tuple(settings.vswitches),
                     security_group_id=settings.security_group, zone_id=settings.zone)


def build_provider(settings: Settings, eci_client: Any, api: Any, recorder: Any,
                   metrics: Metrics) -> Any:
    """The ECI provider (cloud side) wired to our recorder and pod resources."""
    from vk_eci.cloud.provider import EciProvider
    from vk_eci.cloud.provider_state import ProviderSettings
    from vk_eci.cluster.pods.resources import KubePodResources

    # Matches EciProvider's signature (ProviderSettings, events=); was settings=/recorder=.
    provider_settings = ProviderSettings(
        placement=placement(settings), cluster_name=settings.cluster_name,
        node_name=settings.node_name,
        cpu_architecture=ARCHITECTURES[settings.architecture],
        cluster_dns=settings.cluster_dns, cluster_domain=settings.cluster_domain,
        refresh_interval=settings.status_sync_interval)
    return EciProvider(eci_client, provider_settings, KubePodResources(api), events=recorder,
                       cache_decider=image_cache_chooser(settings, eci_client, recorder, metrics),
                       metrics=metrics)


def image_cache_chooser(settings: Settings, eci_client: Any, recorder: Any,
                        metrics: Metrics) -> Any:
    """The provider's image-cache step: catalog of ECI caches + per-pod choice."""
    from vk_eci.cloud.caches.autocreate import AutoCacheSettings, CacheBuilder
    from vk_eci.cloud.caches.catalog import CacheCatalog
    from vk_eci.cloud.caches.decider import PodCacheChooser
    from vk_eci.cloud.caches.decision import CacheChoiceSettings
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
        auto_create_on_miss=settings.imagecache_auto_create), builder=builder)


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
                        pod_uid: Callable[[str, str], str | None] | None = None,
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
                      node_name=settings.node_name, pod_uid=pod_uid)
    kubelet = KubeletServer.from_settings(settings, api, pod_io, node_ip(settings), metrics)
    out.append(("kubelet-api", kubelet.run()))
    if settings.imagecache_controller:
        from vk_eci.cluster.imagecaches.context import ImageCacheSettings
        from vk_eci.cluster.imagecaches.controller import ImageCacheController

        # The leader Lease from the flags (the chart's RBAC grants exactly that one), and where
        # ECI runs the cache builder: CreateImageCache requires a security group and vSwitch.
        cache_settings = ImageCacheSettings(
            lease_namespace=settings.imagecache_lease_namespace,
            lease_name=settings.imagecache_lease_name, placement=placement(settings),
            cluster_name=settings.cluster_name,
            legacy_cluster_name=settings.legacy_cluster_name)
        controller = ImageCacheController(cache_api or api, eci_client,
                                          identity=settings.identity,
                                          settings=cache_settings, metrics=metrics,
                                          observer=cache_observer)
        out.append(("imagecache-controller", controller.run()))
    return out


def fleet_member(api: Any, settings: Settings, eci_client: Any, metrics: Metrics) -> Any:
    """This process's member Lease among every process of its ECI account in the cluster,
    setting the client's share of the account's limits (docs/RELIABILITY.md "One account
    budget"). Unelected or standby, every process spends ECI calls, so each is a member."""
    from vk_eci.cloud.api.credentials import caller_identity
    from vk_eci.cluster.fleet.account import account_key
    from vk_eci.cluster.fleet.member import FleetMember

    account = account_key(settings.region, settings.eci_account or caller_identity())
    return FleetMember(api, namespace=settings.eci_account_lease_namespace, account=account,
                       identity=settings.identity, node_name=settings.node_name,
                       set_share=eci_client.set_rate_share, metrics=metrics)
