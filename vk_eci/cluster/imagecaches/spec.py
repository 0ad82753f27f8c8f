"""An ImageCache object's spec, its registry credentials, and the ECI requests built from them.

Pure functions: no I/O. The controller fetches the objects and secrets; this module reads them.
Secret contents never appear in an exception message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_eci20180808 import models as eci

from matcher import REFERENCE_MAX
from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.caches.provenance import provenance_tags
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.translation.credentials import parse_pull_secret
from vk_eci.cluster.imagecaches.annotations import CacheOptions, parse_cache_annotations
from vk_eci.cluster.imagecaches.secrets import GRANT_ANNOTATION, reviewed_of
from vk_eci.provider import SecretData

GROUP = "eci.alibabacloud.com"
VERSION = "v1"
PLURAL = "imagecaches"
KIND = "ImageCache"
API_VERSION = f"{GROUP}/{VERSION}"
FINALIZER = "eci.alibabacloud.com/imagecache-controller"

# Tags that tie an ECI cache to the object it was created for.
TAG_MANAGED_BY = "eci.alibabacloud.com/managed-by"
TAG_MANAGED_BY_VALUE = "vk-eci"
TAG_NAME = "eci.alibabacloud.com/imagecache-name"
TAG_UID = "eci.alibabacloud.com/imagecache-uid"

DEFAULT_SIZE_GIB = 20
MAX_IMAGES = 20  # ECI's limit per image cache
_ECI_NAME_MAX = 128


class SecretError(ValueError):
    """A referenced image pull secret is missing or unusable; names it, never its data."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"image pull secret {ref}: {reason}")
        self.ref = ref
        self.reason = reason


@dataclass(frozen=True)
class SecretRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"


@dataclass(frozen=True)
class RegistryCredential:
    server: str
    user_name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ImageCacheSpec:
    """What an ImageCache object asks for, read from its raw JSON."""

    name: str
    uid: str
    generation: int
    images: tuple[str, ...]
    secrets: tuple[SecretRef, ...]
    size_gib: int
    retention_days: int | None
    # Refs the admission webhook reviewed for the object's author (secrets.REVIEWED_ANNOTATION).
    reviewed: frozenset[str] = frozenset()
    # The advisor's one-time value (secrets.GRANT_ANNOTATION), when it wrote the object.
    grant_nonce: str = ""
    options: CacheOptions = field(default_factory=lambda: CacheOptions({}))

    @property
    def eci_name(self) -> str:
        return eci_cache_name(self.name)

    def tags(self, cluster_name: str) -> dict[str, str]:
        """What ties an ECI cache to this object in this cluster (see ``owner``)."""
        return owner_tags(self.name, self.uid, cluster_name)


def owner_tags(name: str, uid: str, cluster_name: str) -> dict[str, str]:
    """The tags of the ECI cache of ImageCache ``name``/``uid`` in cluster ``cluster_name``."""
    return {TAG_MANAGED_BY: TAG_MANAGED_BY_VALUE, TAG_NAME: naming.tag_value(name),
            TAG_UID: uid, **naming.cluster_tags(cluster_name)}


def parse_secret_ref(ref: str) -> SecretRef:
    """``namespace:name`` → SecretRef (the CRD schema already enforces the shape)."""
    namespace, sep, name = ref.partition(":")
    if not sep or not namespace or not name:
        raise SecretError(ref, "must be written namespace:secretName")
    return SecretRef(namespace, name)


def spec_from_object(obj: Mapping[str, Any]) -> ImageCacheSpec:
    """Read an ImageCache object; raises ValueError naming the field when it is unusable."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    images = spec.get("images") or []
    if not isinstance(images, list) or not images or not all(
            isinstance(i, str) and i.strip() for i in images):
        raise ValueError("spec.images: must be 1 to 20 non-empty image names")
    # The CRD says the same; an object stored before the CRD did (or under an edited CRD) is
    # refused here, named, and never sent to ECI.
    if len(images) > MAX_IMAGES:
        raise ValueError(f"spec.images: {len(images)} images, at most {MAX_IMAGES} "
                         f"(ECI's limit per image cache)")
    for i, image in enumerate(images):
        if len(image) > REFERENCE_MAX:
            raise ValueError(f"spec.images[{i}]: {len(image)} characters ({image[:40]}...), "
                             f"at most {REFERENCE_MAX} (an image reference: name, tag, digest)")
    size = spec.get("imageCacheSize", DEFAULT_SIZE_GIB)
    retention = spec.get("retentionDays")
    return ImageCacheSpec(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0) or 0),
        images=tuple(images),
        secrets=tuple(parse_secret_ref(s) for s in spec.get("imagePullSecrets") or []),
        size_gib=int(size) if size is not None else DEFAULT_SIZE_GIB,
        retention_days=int(retention) if retention is not None else None,
        reviewed=reviewed_of(meta.get("annotations")),
        grant_nonce=str((meta.get("annotations") or {}).get(GRANT_ANNOTATION) or ""),
        options=parse_cache_annotations(meta.get("annotations")),
    )


def eci_cache_name(object_name: str) -> str:
    """The ECI cache name for an object: ECI allows 2 to 128 of ``[a-z0-9-]``, Kubernetes also dots.

    Over-long names keep a hash of the whole so that two objects never share an ECI name.
    """
    name = re.sub(r"[^a-z0-9-]", "-", object_name.lower()).strip("-") or "imagecache"
    if len(name) < 2:
        name = f"{name}-ic"
    if len(name) > _ECI_NAME_MAX:
        digest = hashlib.sha256(object_name.encode()).hexdigest()[:10]
        name = f"{name[:_ECI_NAME_MAX - 11].rstrip('-')}-{digest}"
    return name


def credentials_from_secret(ref: str, secret_type: str | None,
                            data: Mapping[str, str] | None) -> list[RegistryCredential]:
    """Registry credentials of a ``dockerconfigjson``/``dockercfg`` secret (``data`` base64).

    The format is parsed in one place,
    :func:`vk_eci.cloud.translation.credentials.parse_pull_secret`;
    its errors become :class:`SecretError` naming ``ref`` (never the content).
    """
    try:
        decoded = {k: base64.b64decode(v, validate=True) for k, v in (data or {}).items()}
    except (binascii.Error, ValueError) as e:
        raise SecretError(ref, "its data is not base64") from e
    try:
        creds = parse_pull_secret(ref, SecretData(type=secret_type or "", data=decoded))
    except InvalidInput as e:
        raise SecretError(ref, e.reason) from e
    if not creds:
        raise SecretError(ref, "lists no registry")
    return [RegistryCredential(c.server, c.username, c.password) for c in creds]


def create_request(spec: ImageCacheSpec, creds: Sequence[RegistryCredential],
                   placement: Placement | None = None,
                   cluster_name: str = "default") -> eci.CreateImageCacheRequest:
    where = placement or Placement()
    req = eci.CreateImageCacheRequest(
        region_id=where.region_id,
        security_group_id=where.security_group_id,
        v_switch_id=where.vswitch_id,
        zone_id=where.zone_id,
        image_cache_name=spec.eci_name,
        image=list(spec.images),
        image_cache_size=spec.size_gib,
        retention_days=spec.retention_days,
        # A retried create after a crash must not build a second cache; a new generation
        # (a rebuild after a failure) is a new request.
        client_token=f"{spec.uid}-{spec.generation}" if spec.uid else None,
        image_registry_credential=[
            eci.CreateImageCacheRequestImageRegistryCredential(
                server=c.server, user_name=c.user_name, password=c.password) for c in creds
        ] or None,
        # Whose credentials built it: the node never starts a pod without credentials for
        # those registries from it (docs/IMAGE_CACHES.md, "Private images stay private").
        tag=[eci.CreateImageCacheRequestTag(key=k, value=v)
             for k, v in {**spec.tags(cluster_name), **provenance_tags(
                 (r.namespace for r in spec.secrets) if creds else (),
                 (c.server for c in creds))}.items()],
    )
    spec.options.apply(req)  # the object's own annotations win over the node's placement
    return req


@dataclass(frozen=True)
class UpdatePlan:
    """What one new generation of an object changes in its existing ECI cache.

    ``images``/``size_gib``/``retention_days`` go to ``UpdateImageCache`` (None: leave as is);
    ``refused`` holds, per spec field ECI cannot change in place, a message naming the field.
    """

    images: bool
    size_gib: int | None
    retention_days: int | None
    refused: tuple[str, ...] = ()

    @property
    def sends(self) -> bool:
        return self.images or self.size_gib is not None or self.retention_days is not None

    def describe(self, spec: ImageCacheSpec) -> str:
        parts = []
        if self.images:
            parts.append(f"{len(spec.images)} image(s)")
        if self.size_gib is not None:
            parts.append(f"imageCacheSize {self.size_gib} GiB")
        if self.retention_days is not None:
            parts.append(f"retentionDays {self.retention_days}")
        return ", ".join(parts)


def plan_update(spec: ImageCacheSpec, cache: Any) -> UpdatePlan:
    """Compare ``spec`` with ECI ``cache`` (a DescribeImageCaches item) for ``UpdateImageCache``.

    DescribeImageCaches tells a cache's expiry but not its retention, so a set ``retentionDays``
    is sent on every new generation: ECI counts retention from the cache's creation, so sending
    the same value again changes nothing.
    """
    cache_id = getattr(cache, "image_cache_id", None) or "?"
    refused: list[str] = []
    size: int | None = None
    current_size = getattr(cache, "image_cache_size", None)
    if current_size is None or spec.size_gib > int(current_size):
        size = spec.size_gib
    elif spec.size_gib < int(current_size):
        refused.append(
            f"spec.imageCacheSize: ECI cannot shrink image cache {cache_id} in place from "
            f"{current_size} to {spec.size_gib} GiB (a cache disk only grows); the cache keeps "
            f"{current_size} GiB until the ImageCache object is re-created")
    expiry = getattr(cache, "expire_date_time", None)
    if spec.retention_days is None and expiry:
        refused.append(
            f"spec.retentionDays: ECI cannot remove the retention of image cache {cache_id} in "
            f"place; it still expires at {expiry} unless the ImageCache object is re-created")
    return UpdatePlan(images=images_differ(spec.images, getattr(cache, "images", None)),
                      size_gib=size, retention_days=spec.retention_days, refused=tuple(refused))


def update_request(cache_id: str, spec: ImageCacheSpec, creds: Sequence[RegistryCredential],
                   region_id: str | None = None,
                   plan: UpdatePlan | None = None) -> eci.UpdateImageCacheRequest:
    """``UpdateImageCache`` for ``plan`` (default: send the images and the retention)."""
    plan = plan or UpdatePlan(images=True, size_gib=None, retention_days=spec.retention_days)
    return eci.UpdateImageCacheRequest(
        region_id=region_id,
        client_token=f"{spec.uid}-{spec.generation}" if spec.uid else None,
        image_cache_id=cache_id,
        # Images only when they changed: sending them makes ECI pull them again.
        image=list(spec.images) if plan.images else None,
        image_cache_size=plan.size_gib,
        retention_days=plan.retention_days,
        image_registry_credential=[
            eci.UpdateImageCacheRequestImageRegistryCredential(
                server=c.server, user_name=c.user_name, password=c.password) for c in creds
        ] or None,
    )


def images_differ(wanted: Sequence[str], cached: Sequence[str] | None) -> bool:
    """Order does not matter to a cache; duplicates neither."""
    return set(wanted) != set(cached or [])
