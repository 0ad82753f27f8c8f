"""The registry credentials of an ImageCache object's pull secrets, as the controller reads
them (which secrets it may use: cluster/imagecaches/secrets.py).

A secret is read only when the object may use it: its namespace is shared, the webhook reviewed
it for the object's author, or this process's cache advisor granted it to its own object
(``AdvisorGrants``). Whatever the reason one cannot be used, the error says only "not usable";
the precise reason is a log line for the operator. Secret contents never appear in a message.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.rest import ApiException

from vk_eci.cloud.caches.provenance import image_registries, registry_of_server
from vk_eci.cluster.imagecaches.context import ImageCacheSettings
from vk_eci.cluster.imagecaches.secrets import NOT_USABLE, usable
from vk_eci.cluster.imagecaches.spec import (
    ImageCacheSpec,
    RegistryCredential,
    SecretError,
    SecretRef,
    credentials_from_secret,
)
from vk_eci.log import caches_logger as log


async def read_credentials(core: Any, spec: ImageCacheSpec,
                           settings: ImageCacheSettings) -> list[RegistryCredential]:
    """The credentials of every pull secret ``spec`` names (``core``: a ``CoreV1Api``); one
    it may not use, or that is missing, unreadable or malformed, raises :class:`SecretError`
    saying only "not usable"."""
    creds: list[RegistryCredential] = []
    for ref in spec.secrets:
        try:
            creds.extend(await _secret(core, spec, ref, settings))
        except SecretError as e:
            log.warning("ImageCache %s: pull secret %s refused: %s", spec.name, ref,
                        e.reason, extra={"imagecache": spec.name})
            raise SecretError(str(ref), NOT_USABLE) from None
    return creds


def _granted(spec: ImageCacheSpec, ref: SecretRef, settings: ImageCacheSettings) -> bool:
    grants = settings.grants
    return grants is not None and grants.allows(spec.name, spec.uid, spec.grant_nonce,
                                                str(ref), spec.images)


async def _secret(core: Any, spec: ImageCacheSpec, ref: SecretRef,
                  settings: ImageCacheSettings) -> list[RegistryCredential]:
    granted = _granted(spec, ref, settings)
    if not granted and not usable(str(ref), ref.namespace, settings.secret_policy,
                                  spec.reviewed):
        raise SecretError(str(ref), "neither in a shared namespace nor reviewed at "
                                    "admission for the object's author")
    try:
        secret = await core.read_namespaced_secret(ref.name, ref.namespace)
    except ApiException as e:
        if e.status == 404:
            raise SecretError(str(ref), "not found") from None
        if e.status == 403:
            raise SecretError(str(ref), "not readable by the controller (forbidden)") from None
        raise
    creds = credentials_from_secret(str(ref), secret.type, secret.data)
    if granted:
        # The advisor's grant covers the cache's images: no credential for another registry
        # leaves the cluster (as for the node's own builds).
        held = image_registries(spec.images)
        creds = [c for c in creds if registry_of_server(c.server) in held]
    return creds
