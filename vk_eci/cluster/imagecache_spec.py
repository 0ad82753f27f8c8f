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

from vk_eci.cloud.credentials import parse_pull_secret
from vk_eci.cloud.errors import InvalidInput
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

    @property
    def eci_name(self) -> str:
        return eci_cache_name(self.name)

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_MANAGED_BY: TAG_MANAGED_BY_VALUE, TAG_NAME: self.name, TAG_UID: self.uid}


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

    The format is parsed in one place, :func:`vk_eci.cloud.credentials.parse_pull_secret`;
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


@dataclass(frozen=True)
class Placement:
    """Where ECI runs the instance that builds a cache (CreateImageCache requires it)."""

    region_id: str | None = None
    security_group_id: str | None = None
    vswitch_id: str | None = None
    zone_id: str | None = None


def create_request(spec: ImageCacheSpec, creds: Sequence[RegistryCredential],
                   placement: Placement | None = None) -> eci.CreateImageCacheRequest:
    where = placement or Placement()
    return eci.CreateImageCacheRequest(
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
        tag=[eci.CreateImageCacheRequestTag(key=k, value=v) for k, v in spec.tags.items()],
    )


def update_request(cache_id: str, spec: ImageCacheSpec, creds: Sequence[RegistryCredential],
                   region_id: str | None = None) -> eci.UpdateImageCacheRequest:
    return eci.UpdateImageCacheRequest(
        region_id=region_id,
        client_token=f"{spec.uid}-{spec.generation}" if spec.uid else None,
        image_cache_id=cache_id,
        image=list(spec.images),
        retention_days=spec.retention_days,
        image_registry_credential=[
            eci.UpdateImageCacheRequestImageRegistryCredential(
                server=c.server, user_name=c.user_name, password=c.password) for c in creds
        ] or None,
    )


def images_differ(wanted: Sequence[str], cached: Sequence[str] | None) -> bool:
    """Order does not matter to a cache; duplicates neither."""
    return set(wanted) != set(cached or [])
