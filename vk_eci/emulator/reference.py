"""The emulator's own image-reference normalisation: minimal, after Docker's documented defaults.

ECI names images as Docker does, and documents nothing finer about how it compares them. This
module is deliberately small and shares no code with the node's image matching, so that a
comparison of the node's choice with the emulator's compares two readings, not one code with
itself:

- ``name[:tag][@digest]``; a first path segment is a registry host when it holds ``.`` or
  ``:`` or is ``localhost``, otherwise the image is on Docker Hub (``docker.io``), where a
  one-segment name lives under ``library/``; no tag and no digest means ``:latest``;
- the Docker Hub aliases ``index.docker.io`` and ``registry-1.docker.io`` are ``docker.io``;
- host names are case-insensitive; repository paths must be lower case.

:func:`acr_fold` (used only when the emulator model says so, see docs/EMULATOR.md) maps the
``-vpc``/``-internal`` endpoints of one Alibaba Container Registry to its public name.
"""

from __future__ import annotations

import re

__all__ = ["BadReference", "acr_fold", "normalize"]

_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST = re.compile(r"sha(?:256:[a-f0-9]{64}|384:[a-f0-9]{96}|512:[a-f0-9]{128})\Z")
_ACR = (re.compile(r"(registry(?:-intl)?)(?:-vpc|-internal)(\.[a-z0-9-]+\.aliyuncs\.com)\Z"),
        re.compile(r"([a-z0-9][a-z0-9-]*-registry)-vpc(\.[a-z0-9-]+\.cr\.aliyuncs\.com)\Z"))


class BadReference(ValueError):
    """Not an image reference; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize(ref: str) -> str:
    """``registry/path:tag`` or ``registry/path@digest`` of ``ref``; :class:`BadReference`."""
    if not ref or any(ch.isspace() for ch in ref):
        raise BadReference("empty or contains whitespace")
    name, at, digest = ref.partition("@")
    if at and not _DIGEST.match(digest):
        raise BadReference(f"digest {digest!r} is not sha256/384/512 hex")
    tag = ""
    if name.rfind(":") > name.rfind("/"):
        name, _, tag = name.rpartition(":")
        if not _TAG.match(tag):
            raise BadReference(f"tag {tag!r} is not 1-128 of [A-Za-z0-9_.-]")
    host, slash, path = name.partition("/")
    if not slash or ("." not in host and ":" not in host and host != "localhost"):
        host, path = "docker.io", name
    elif not _HOST.match(host):
        raise BadReference(f"registry host {host!r} is not a host name")
    host = host.lower()
    if host in _HUB_ALIASES:
        host = "docker.io"
    parts = path.split("/")
    for part in parts:
        if not _COMPONENT.match(part):
            raise BadReference(f"repository path component {part!r} must be lower-case letters "
                               "and digits joined by '.', '_', '__' or dashes")
    if host == "docker.io" and len(parts) == 1:
        path = "library/" + path
    if at:
        return f"{host}/{path}@{digest}"
    return f"{host}/{path}:{tag or 'latest'}"


def acr_fold(normalized: str) -> str:
    """``registry-vpc.cn-x.aliyuncs.com/…`` as ``registry.cn-x.aliyuncs.com/…`` (and the same
    for ACR Enterprise ``<name>-registry-vpc.<region>.cr.aliyuncs.com``)."""
    host, slash, rest = normalized.partition("/")
    for pattern in _ACR:
        m = pattern.match(host)
        if m:
            return f"{m.group(1)}{m.group(2)}{slash}{rest}"
    return normalized
