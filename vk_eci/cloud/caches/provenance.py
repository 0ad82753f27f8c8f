"""Whose registry credentials built an image cache, and which pods may start from it.

An ECI image cache is an account-wide object: every pod of every namespace could be matched to
it. A cache holding an image of a registry that needs credentials must not let a pod without
those credentials run that image from the cache's disk (docs/IMAGE_CACHES.md, "Private images
stay private"). So every cache vk-eci creates carries its **provenance** in two tags:

==========================================  ==============================================
``vk-eci.io/provenance``                    ``none`` (built with no credential), or the
                                            namespaces whose pull secrets built it
``vk-eci.io/credentialed-registries``       the registries those credentials were for
                                            (``*``: every registry of its images)
==========================================  ==============================================

A registry *needs credentials* for a cache when:

- the operator lists it (``--imagecache-private-registries``), whatever the cache; or
- the cache's provenance names credentials for it (``*`` names every registry it holds); or
- the cache has no provenance tag (made in the console or API, by ECI's server-side
  auto-create, or by vk-eci before provenance existed) and some cache of the catalog was built
  with credentials for that registry.

A cache tagged ``none`` was pulled anonymously: its images are public, so any pod may use it
(except for registries the operator lists). A pod may start from a cache only when it has
credentials for every registry that cache needs them for: registries named in its own
``imagePullSecrets``. The node has no registry credentials of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from matcher import InvalidReference, normalize_image

TAG_PROVENANCE = "vk-eci.io/provenance"
TAG_CREDENTIALED = "vk-eci.io/credentialed-registries"
NO_CREDENTIALS = "none"
EVERY_REGISTRY = "*"
_MAX_TAG_VALUE = 128  # ECI's limit on a tag value


def registry_of(image: str) -> str | None:
    """The canonical registry host of an image reference (None when it cannot be parsed)."""
    try:
        return normalize_image(image).split("/", 1)[0]
    except InvalidReference:
        return None


def registry_of_server(server: str) -> str | None:
    """The canonical registry host of a pull secret's server (``https://index.docker.io/v1/``
    is ``docker.io``; the endpoints of one Alibaba registry are one registry)."""
    text = server.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    host = text.split("/", 1)[0]
    return registry_of(f"{host}/provenance-probe") if host else None


def registries_of_servers(servers: Iterable[str]) -> frozenset[str]:
    return frozenset(r for r in (registry_of_server(s) for s in servers) if r)


def provenance_tags(namespaces: Iterable[str], servers: Iterable[str]) -> dict[str, str]:
    """The two tags of a cache built with the pull secrets of ``namespaces`` holding
    credentials for ``servers`` (both empty: built with no credential). A value too long for
    ECI says ``*`` (every registry of the cache needs credentials): never less strict."""
    registries = sorted(registries_of_servers(servers))
    spaces = sorted(set(namespaces))
    if not registries:
        return {TAG_PROVENANCE: NO_CREDENTIALS, TAG_CREDENTIALED: NO_CREDENTIALS}
    who = ",".join(spaces) or EVERY_REGISTRY
    which = ",".join(registries)
    if len(who) > _MAX_TAG_VALUE:
        who = EVERY_REGISTRY
    if len(which) > _MAX_TAG_VALUE:
        which = EVERY_REGISTRY
    return {TAG_PROVENANCE: who, TAG_CREDENTIALED: which}


@dataclass(frozen=True)
class Provenance:
    """A cache's provenance read from its tags. ``known`` False: no provenance tag."""

    known: bool
    anonymous: bool = False
    # Registries its credentials were for; None: every registry of its images.
    registries: frozenset[str] | None = frozenset()


def provenance_of(tags: Sequence[tuple[str, str]] | Mapping[str, str]) -> Provenance:
    found = dict(tags)
    who = found.get(TAG_PROVENANCE)
    if who is None:
        return Provenance(known=False)
    if who == NO_CREDENTIALS:
        return Provenance(known=True, anonymous=True)
    which = found.get(TAG_CREDENTIALED, EVERY_REGISTRY)
    if which in (EVERY_REGISTRY, NO_CREDENTIALS, ""):
        # Credentials without a readable list of registries: the strict reading.
        return Provenance(known=True, registries=None)
    return Provenance(known=True, registries=frozenset(r for r in which.split(",") if r))


def covers(tags: Sequence[tuple[str, str]] | Mapping[str, str], servers: Iterable[str]) -> bool:
    """Whether a cache's provenance already names credentials for every one of ``servers``
    (tags are fixed at creation: an update with credentials beyond them would leave the cache
    claiming less than it holds)."""
    wanted = registries_of_servers(servers)
    if not wanted:
        return True
    prov = provenance_of(tags)
    if not prov.known or prov.anonymous:
        return False
    return prov.registries is None or wanted <= prov.registries


def image_registries(images: Iterable[str]) -> frozenset[str]:
    return frozenset(r for r in (registry_of(i) for i in images) if r)


def credentialed_registries(images: Iterable[str],
                            tags: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Registries of ``images`` the cache's own provenance says were pulled with credentials."""
    prov = provenance_of(tags)
    held = image_registries(images)
    if not prov.known or prov.anonymous:
        return frozenset()
    return held if prov.registries is None else held & prov.registries


class PrivateRegistries:
    """The registries some cache of the catalog was built with credentials for, kept as the
    catalog changes (a count per registry, so that a cache going away takes its share)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, registries: Iterable[str]) -> None:
        self._counts.update(registries)

    def remove(self, registries: Iterable[str]) -> None:
        self._counts.subtract(registries)
        self._counts = +self._counts  # drop zeros

    def current(self) -> frozenset[str]:
        return frozenset(self._counts)


@dataclass(frozen=True)
class Access:
    """What one pod may start from: the registries that need credentials and its own."""

    private: frozenset[str] = frozenset()   # the operator's and the catalog's credentialed
    operator: frozenset[str] = frozenset()  # the operator's list alone
    credentials: frozenset[str] = frozenset()  # registries the pod has credentials for
    sends_credentials: bool = False

    def needed(self, images: Sequence[str], tags: Sequence[tuple[str, str]]) -> frozenset[str]:
        """Registries a cache of ``images`` with ``tags`` needs credentials for."""
        held = image_registries(images)
        prov = provenance_of(tags)
        if not prov.known:
            return held & (self.private | self.operator)
        return credentialed_registries(images, tags) | (held & self.operator)

    def lacking(self, images: Sequence[str], tags: Sequence[tuple[str, str]]) -> frozenset[str]:
        """Registries the pod lacks credentials for (empty: it may use the cache)."""
        return self.needed(images, tags) - self.credentials

    def keeps_always(self, image: str) -> bool:
        """Whether a container of ``image`` keeps pulling ``Always`` although it starts from a
        cache: its registry needs credentials, and every start must authenticate."""
        registry = registry_of(image)
        return registry is not None and registry in (self.private | self.operator)
