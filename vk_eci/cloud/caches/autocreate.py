"""Image caches the node builds itself, for constrained pods that found none.

A pod with ``imc-perfect-match`` or ``imc-match-count-request`` that no cache satisfies starts
without a cache: ECI's own auto-create (``AutoMatchImageCache``) would also match server-side
with any overlap, widening the pod's constraint. With ``--imagecache-auto-create`` on, the node
instead creates an ECI image cache holding exactly the pod's images, so the next identical pod
hits. Bounds and idempotence:

- once per distinct image set: the name (``vk-eci-<first image>-<digest of the set>``) and
  ``ClientToken`` derive from the set, a cache of that name already in the catalog or in ECI is
  not created again (so restarts and several nodes do not duplicate it);
- at most ``limit`` live node-built caches of this cluster, counted from ECI's listing (their
  tags) plus this process's creates, so restarts do not reset it; at most ECI's 20 images per
  cache, with a retention so that an unused cache goes away by itself;
- tagged ``vk-eci.io/built-by=node`` and with the cluster, so that an operator can find them
  and the ImageCache controller (which touches only its own tags) leaves them alone; and only a
  cache carrying both counts as built: a same-named cache of anyone else (the name is
  predictable) never stops the node from building its own, and is never touched.

Credentials (docs/IMAGE_CACHES.md, "Private images stay private"): the cache is built with the
asking pod's own pull credentials for the registries of its images (:class:`BuildFor`), and is
then that namespace's: its provenance tags name the namespace and those registries, and its
name and ``ClientToken`` derive from the namespace too, so that the same images asked for by
another namespace make another cache (never one cache with two namespaces' credentials). A pod
with no credential for its images' registries builds as before, tagged ``none``.

A created cache goes into the catalog at once (``Creating``): a pod arriving meanwhile sees
that it is being built, and the catalog's Ready callback follows as ECI reports it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api import naming
from vk_eci.cloud.caches.catalog import FAILED_STATES, CacheCatalog, CacheInfo, info_from_model
from vk_eci.cloud.caches.provenance import image_registries, provenance_tags, registry_of_server
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.translation.credentials import RegistryCredential
from vk_eci.log import caches_logger

TAG_BUILT_BY = "vk-eci.io/built-by"
BUILT_BY_NODE = "node"
MAX_IMAGES = 20  # ECI's limit per image cache
_SLUG = re.compile(r"[^a-z0-9]+")


class ImageCacheMaker(Protocol):
    """The client calls the builder needs (``EciClient`` has them)."""

    async def create_image_cache(self, req: Any) -> str:
        ...

    async def describe_image_caches(self, *, name: str | None = None) -> list[Any]:
        ...


@dataclass(frozen=True)
class AutoCacheSettings:
    """Where ECI runs the cache builder and how big and long-lived the caches are."""

    placement: Placement
    cluster_name: str
    size_gib: int = 20
    retention_days: int | None = 7
    limit: int = 50  # live node-built caches of this cluster (counted by their tags)


@dataclass(frozen=True)
class BuildFor:
    """Whose pull credentials a build uses: the asking pod's namespace and the credentials of
    its own ``imagePullSecrets`` (:meth:`for_images` keeps those its images need)."""

    namespace: str = ""
    credentials: tuple[RegistryCredential, ...] = ()

    def for_images(self, images: Sequence[str]) -> BuildFor:
        """Only the credentials for registries of ``images`` (no other secret leaves the
        cluster); none left: an anonymous build, owned by no namespace."""
        held = image_registries(images)
        kept = tuple(c for c in self.credentials if registry_of_server(c.server) in held)
        return BuildFor(self.namespace, kept) if kept else ANONYMOUS

    @property
    def servers(self) -> tuple[str, ...]:
        return tuple(sorted({c.server for c in self.credentials}))


ANONYMOUS = BuildFor()


def image_set_digest(images: Sequence[str], owner: BuildFor = ANONYMOUS) -> str:
    """Digest of a set of normalised images (order and repeats do not matter), and of the
    namespace and registries whose credentials build it (none: the digest of the set alone)."""
    text = "\n".join(sorted(set(images)))
    if owner.credentials:
        text += f"\n#credentials {owner.namespace} {','.join(owner.servers)}"
    return hashlib.sha256(text.encode()).hexdigest()


def cache_name(images: Sequence[str], owner: BuildFor = ANONYMOUS) -> str:
    """``vk-eci-<first image's repository>-<12 hex of the set>``: readable and unique per set
    (and per namespace, when built with credentials). A valid ECI name (lower-case letters,
    digits, hyphens; 2 to 128 characters)."""
    first = sorted(set(images))[0]
    repository = first.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    slug = _SLUG.sub("-", repository.lower()).strip("-")[:40] or "images"
    return f"vk-eci-{slug}-{image_set_digest(images, owner)[:12]}"


def built_tags(cluster_name: str) -> dict[str, str]:
    """The tags of a cache the node builds: what proves it the node's (and this cluster's)."""
    return {TAG_BUILT_BY: BUILT_BY_NODE, **naming.cluster_tags(cluster_name)}


def created_tags(cluster_name: str, owner: BuildFor = ANONYMOUS) -> dict[str, str]:
    """Every tag of a cache the node creates: ``built_tags`` and its provenance (``none`` when
    built with no credential; else the namespace and the registries of its credentials)."""
    spaces = (owner.namespace,) if owner.credentials else ()
    return {**built_tags(cluster_name), **provenance_tags(spaces, owner.servers)}


def create_request(images: Sequence[str], settings: AutoCacheSettings,
                   owner: BuildFor = ANONYMOUS) -> Any:
    tags = created_tags(settings.cluster_name, owner)
    return eci.CreateImageCacheRequest(
        region_id=settings.placement.region_id,
        security_group_id=settings.placement.security_group_id,
        v_switch_id=settings.placement.vswitch_id, zone_id=settings.placement.zone_id,
        image_cache_name=cache_name(images, owner), image=sorted(set(images)),
        image_cache_size=settings.size_gib, retention_days=settings.retention_days,
        # Per cluster too: another cluster's create of the same set (other tags) must not be
        # answered with its cache, nor refused as a mismatched retry.
        client_token=hashlib.sha256(
            f"{settings.cluster_name}\n{image_set_digest(images, owner)}".encode()).hexdigest(),
        image_registry_credential=[eci.CreateImageCacheRequestImageRegistryCredential(
            server=c.server, user_name=c.username, password=c.password)
            for c in owner.credentials] or None,
        tag=[eci.CreateImageCacheRequestTag(key=k, value=v) for k, v in tags.items()])


class CacheBuilder:
    """See the module docstring. ``await build(images, owner)``: the cache's id (new or
    existing), or None when the set is out of bounds. Raises the client's errors (the caller
    logs them)."""

    def __init__(self, client: ImageCacheMaker, catalog: CacheCatalog,
                 settings: AutoCacheSettings) -> None:
        self.client = client
        self.catalog = catalog
        self.settings = settings
        self._done: dict[str, str] = {}  # digest -> cache id
        self._refused: set[str] = set()  # digests refused for a bound (said once each)

    def wanted(self, images: Sequence[str], owner: BuildFor = ANONYMOUS) -> bool:
        """Whether ``build(images, owner)`` would do anything (cheap; no I/O)."""
        owner = owner.for_images(images)
        digest = image_set_digest(images, owner)
        return (digest not in self._done and digest not in self._refused
                and self._existing(cache_name(images, owner)) is None)

    def built(self) -> int:
        """Caches counted against ``limit``: every live cache ECI lists with this cluster's
        node-built tags (so a restart does not start counting again) and those this process
        made since."""
        listed = {i.cache_id for i in self.catalog.all()
                  if i.status not in FAILED_STATES and self._ours(i.tags)}
        return len(listed | set(self._done.values()))

    def _ours(self, tags: Sequence[tuple[str, str]]) -> bool:
        return built_tags(self.settings.cluster_name).items() <= dict(tags).items()

    def _existing(self, name: str) -> CacheInfo | None:
        for info in self.catalog.all():
            if info.name == name and info.status not in FAILED_STATES and self._ours(info.tags):
                return info
        return None

    async def build(self, images: Sequence[str], owner: BuildFor = ANONYMOUS) -> str | None:
        owner = owner.for_images(images)
        digest = image_set_digest(images, owner)
        name = cache_name(images, owner)
        if digest in self._done:
            return self._done[digest]
        known = self._existing(name)
        if known is not None:
            self._done[digest] = known.cache_id
            return known.cache_id
        if len(set(images)) > MAX_IMAGES or self.built() >= self.settings.limit:
            if digest not in self._refused:
                self._refused.add(digest)
                caches_logger.warning(
                    "not building image cache %s: %s", name,
                    f"{len(set(images))} images, more than ECI's {MAX_IMAGES}"
                    if len(set(images)) > MAX_IMAGES else
                    f"this cluster's nodes already built {self.settings.limit} caches",
                    extra={"cache": name})
            return None
        # Made earlier (by this node before a restart, or by another node): adopt it.
        for model in await self.client.describe_image_caches(name=name):
            if model.image_cache_name != name or str(model.status) in FAILED_STATES:
                continue
            info = info_from_model(model)
            if not self._ours(info.tags):
                caches_logger.warning(
                    "image cache %s is also named %s but is not this cluster's node-built "
                    "cache (tags %s): left alone, building our own", info.cache_id, name,
                    dict(info.tags), extra={"cache": info.cache_id})
                continue
            self.catalog.observe(model)
            self._done[digest] = info.cache_id
            return info.cache_id
        cache_id = await self.client.create_image_cache(
            create_request(images, self.settings, owner))
        self._done[digest] = cache_id
        self.catalog.put(CacheInfo(cache_id=cache_id, name=name, status="Creating",
                                   images=tuple(sorted(set(images))),
                                   size_gib=self.settings.size_gib,
                                   created_at=self.catalog.now(),
                                   tags=tuple(sorted(created_tags(
                                       self.settings.cluster_name, owner).items()))))
        caches_logger.info("built image cache %s (%s) of %d image(s) for constrained pods%s",
                           cache_id, name, len(set(images)),
                           f" of namespace {owner.namespace}, with its credentials for "
                           f"{', '.join(owner.servers)}" if owner.credentials else "",
                           extra={"cache": cache_id})
        return cache_id
