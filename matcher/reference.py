"""Image reference normalisation, after the Docker reference grammar.

The grammar is the one of ``github.com/distribution/reference`` (``regexp.go``, ``normalize.go``):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component { "/" path-component }
    domain     := host [ ":" port ]

A first path segment is a registry host only when it contains ``.`` or ``:`` or is ``localhost``;
otherwise the image is on Docker Hub. On top of Docker's rules two registries are folded into one
name each: the Docker Hub aliases (``index.docker.io``, ``registry-1.docker.io``) and the endpoint
variants of one Alibaba Container Registry (public, ``-vpc``, ``-internal``), because a cache built
from one endpoint serves pods that name another.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["REFERENCE_MAX", "InvalidReference", "normalize_image"]

DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_NAME_MAX = 255  # distribution/reference NameTotalLengthMax
_TAG_MAX = 128
# The longest reference the grammar accepts: name, ":" tag, "@" and the longest digest
# (sha512: 128 hex). The ImageCache CRD's maxLength and the controller use it.
REFERENCE_MAX = _NAME_MAX + 1 + _TAG_MAX + 1 + len("sha512:") + 128

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN_NAME = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*\Z"
)
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+\Z")

# Endpoint variants of one ACR registry: personal edition per region, and Enterprise Edition
# instances. Keys are matched against the lower-cased host without port.
_ACR_PERSONAL = re.compile(r"registry(-intl)?(?:-vpc|-internal)?\.([a-z0-9-]+)\.aliyuncs\.com\Z")
_ACR_ENTERPRISE = re.compile(
    r"([a-z0-9][a-z0-9-]*?)-registry(?:-vpc)?\.([a-z0-9-]+)\.cr\.aliyuncs\.com\Z"
)


class InvalidReference(ValueError):
    """An image reference that the Docker grammar does not accept.

    ``reference`` is the text as given, ``reason`` says what is wrong with it.
    """

    def __init__(self, reference: str, reason: str) -> None:
        shown = reference if len(reference) <= 300 else reference[:300] + "..."
        super().__init__(f"invalid image reference {shown!r}: {reason}")
        self.reference = reference
        self.reason = reason


def normalize_image(ref: str) -> str:
    """Return the canonical form of ``ref``: ``registry/path:tag`` or ``registry/path@digest``.

    >>> normalize_image("nginx")
    'docker.io/library/nginx:latest'

    Raises :class:`InvalidReference` naming the reference and the reason.
    """
    if not isinstance(ref, str):
        raise InvalidReference(repr(ref), f"must be a string, not {type(ref).__name__}")
    return _normalize(ref)


# Pods name the same few thousand images over and over; lookups normalise every image of every
# pod, so the parse is memoised. Only successes are cached (an exception is not a return value).
@lru_cache(maxsize=65536)
def _normalize(ref: str) -> str:
    if not ref:
        raise InvalidReference(ref, "empty")
    if any(ch.isspace() for ch in ref):
        raise InvalidReference(ref, "contains whitespace")

    name, at, digest = ref.partition("@")
    if at:
        _check_digest(ref, digest)
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(
                ref, f"tag {tag!r} must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
            )
    if not name:
        raise InvalidReference(ref, "repository name is empty")

    domain, path = _split_domain(ref, name)
    components = path.split("/")
    for comp in components:
        if not comp:
            raise InvalidReference(ref, "repository name has an empty path component")
        if not _PATH_COMPONENT.match(comp):
            if comp.lower() != comp and _PATH_COMPONENT.match(comp.lower()):
                raise InvalidReference(ref, f"repository name must be lower-case ({comp!r})")
            raise InvalidReference(
                ref,
                f"path component {comp!r} must be lower-case letters and digits "
                "joined by '.', '_', '__' or dashes",
            )
    if domain == DOCKER_HUB and len(components) == 1:
        path = "library/" + path
    full = f"{domain}/{path}"
    if len(full) > _NAME_MAX:
        raise InvalidReference(ref, f"repository name longer than {_NAME_MAX} characters")
    if at:
        return f"{full}@{digest}"
    return f"{full}:{tag or 'latest'}"


def _check_digest(ref: str, digest: str) -> None:
    algorithm, colon, hexpart = digest.partition(":")
    if not colon:
        raise InvalidReference(ref, f"digest {digest!r} must be <algorithm>:<hex>")
    want = _DIGEST_HEX_LEN.get(algorithm)
    if want is None:
        raise InvalidReference(
            ref, f"digest algorithm {algorithm!r} is not one of {', '.join(_DIGEST_HEX_LEN)}"
        )
    if len(hexpart) != want or not _HEX.match(hexpart):
        raise InvalidReference(ref, f"{algorithm} digest must be {want} lower-case hex digits")


def _split_domain(ref: str, name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return DOCKER_HUB, name
    if "." not in first and ":" not in first and first != "localhost":
        if first.lower() != first:
            # Docker would take 'Foo/bar' for a registry host 'Foo'; a host without a dot is
            # almost always a mistyped Docker Hub namespace, so it is refused, not guessed.
            raise InvalidReference(
                ref,
                f"{first!r} is neither a registry host (no '.' or ':' and not 'localhost') "
                "nor a lower-case repository name",
            )
        return DOCKER_HUB, name
    return _canonical_domain(ref, first), rest


def _canonical_domain(ref: str, domain: str) -> str:
    host, port = domain, ""
    if domain.startswith("["):
        end = domain.find("]")
        host, port = domain[: end + 1], domain[end + 1 :]
        if not _IPV6.match(host):
            raise InvalidReference(ref, f"registry host {host!r} is not a bracketed IPv6 address")
    else:
        host, colon, port_digits = domain.partition(":")
        port = colon + port_digits
        if not _DOMAIN_NAME.match(host):
            raise InvalidReference(ref, f"registry host {host!r} is not a valid host name")
    if port:
        digits = port[1:]
        if not port.startswith(":") or not digits.isdigit() or not digits.isascii():
            raise InvalidReference(ref, f"registry port {port[1:]!r} is not a number")
        number = int(digits)
        if not 1 <= number <= 65535:
            raise InvalidReference(ref, f"registry port {number} is outside 1-65535")
        port = f":{number}"
    host = host.lower()
    if port:
        return host + port
    if host in _DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    m = _ACR_PERSONAL.match(host)
    if m:
        return f"registry{m.group(1) or ''}.{m.group(2)}.aliyuncs.com"
    m = _ACR_ENTERPRISE.match(host)
    if m:
        return f"{m.group(1)}-registry.{m.group(2)}.cr.aliyuncs.com"
    return host
