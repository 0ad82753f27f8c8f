"""Image sizes and registries: what a pull costs and who may pull it.

Sizes are compressed sizes in MB (10^6 bytes), of the images in this repository's docs and tests,
in ECI's examples and of common public images. The Flink figure is the one ECI documents
(386.26 MB: 50 s without a cache, 5 s with one). An unknown image gets a stable size derived from
its name, so repeated runs agree. Images are looked up by their normalised reference
(:mod:`vk_eci.emulator.reference`), the endpoints of one ACR registry as one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from vk_eci.emulator.reference import BadReference, acr_fold, normalize

FLINK_MB = 386.26

# repository (normalised, without tag) -> MB; a tag-specific entry ("repo:tag") wins.
_SIZES_MB: dict[str, float] = {
    "flink": FLINK_MB,
    "flink:1.13": FLINK_MB,
    "flink:1.17": FLINK_MB,
    "registry.cn-hangzhou.aliyuncs.com/eci_open/flink": FLINK_MB,
    "registry.cn-beijing.aliyuncs.com/eci_open/flink": FLINK_MB,
    "nginx": 67.3,
    "nginx:alpine": 16.9,
    "nginx:1.7.9": 39.9,
    "nginx:1.15.10": 43.2,
    "registry.cn-beijing.aliyuncs.com/eci_open/nginx": 43.2,
    "registry.cn-beijing.aliyuncs.com/eci_open/nginx:alpine": 16.9,
    "registry.cn-hangzhou.aliyuncs.com/eci_open/nginx": 43.2,
    "registry.cn-beijing.aliyuncs.com/eci_open/node": 340.5,
    "registry.cn-beijing.aliyuncs.com/eci_open/mysql": 92.4,
    "registry.cn-hangzhou.aliyuncs.com/eci_open/busybox": 0.76,
    "registry.cn-beijing.aliyuncs.com/eci_open/busybox": 0.76,
    "registry.cn-hangzhou.aliyuncs.com/eci_open/centos": 71.2,
    "busybox": 2.16,
    "alpine": 3.41,
    "centos": 71.2,
    "ubuntu": 28.2,
    "debian": 48.9,
    "node": 340.5,
    "node:11": 343.1,
    "mysql": 162.3,
    "mysql:5.6": 92.4,
    "redis": 40.1,
    "postgres": 153.5,
    "python": 370.1,
    "python:3.11-slim": 45.6,
    "golang": 280.7,
    "openjdk": 326.4,
    "spark": 527.8,
    "apache/spark": 527.8,
    "httpd": 58.9,
    "registry.k8s.io/pause": 0.3,
    "gcr.io/google-containers/pause": 0.3,
}


def _key(image: str) -> str:
    return acr_fold(normalize(image))


def _repo_and_tag(normalized: str) -> tuple[str, str]:
    if "@" in normalized:
        return normalized.split("@", 1)[0], ""
    slash = normalized.rfind("/")
    colon = normalized.rfind(":")
    if colon > slash:
        return normalized[:colon], normalized[colon + 1:]
    return normalized, ""


def _build_index() -> dict[str, float]:
    index: dict[str, float] = {}
    for ref, mb in _SIZES_MB.items():
        norm = _key(ref)
        repo, _ = _repo_and_tag(norm)
        # "nginx" normalises to nginx:latest: also make it the repository default.
        if ":" in ref.rsplit("/", 1)[-1]:
            index[norm] = mb
        else:
            index.setdefault(repo, mb)
            index[norm] = mb
    return index


_INDEX = _build_index()


def stable_size_mb(normalized: str) -> float:
    """20 to 400 MB, fixed for a name (hash-derived), for images not in the catalogue."""
    digest = hashlib.sha256(normalized.encode()).digest()
    return round(20.0 + int.from_bytes(digest[:4], "big") % 38_000 / 100.0, 2)


def image_size_mb(image: str) -> float:
    """Size in MB of ``image`` (raises :class:`BadReference` if it is malformed)."""
    norm = _key(image)
    found = _INDEX.get(norm)
    if found is not None:
        return found
    repo, _ = _repo_and_tag(norm)
    found = _INDEX.get(repo)
    return found if found is not None else stable_size_mb(norm)


def registry_of(normalized: str) -> str:
    return normalized.split("/", 1)[0]


def registry_key(server: str) -> str:
    """The registry as matching folds it (ACR -vpc/-internal endpoints are one registry)."""
    server = server.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    try:
        return registry_of(_key(f"{server}/probe"))
    except BadReference:
        return server


@dataclass(frozen=True)
class Access:
    """How a create lets ECI reach registries: ``PlainHttpRegistry``, ``InsecureRegistry`` and
    the ACR instances of ``AcrRegistryInfo`` (all as registry keys)."""

    plain_http: frozenset[str] = frozenset()
    insecure: frozenset[str] = frozenset()
    acr_instances: frozenset[str] = frozenset()


@dataclass
class Registries:
    """Registries configured as private (pulling needs a matching credential), served over
    plain HTTP or with a self-signed certificate (pulling needs the create to say so), and ACR
    Enterprise instances (pulling without a secret needs the instance in ``AcrRegistryInfo``)."""

    private: dict[str, tuple[str, str]] = field(default_factory=dict)
    plain_http: set[str] = field(default_factory=set)
    self_signed: set[str] = field(default_factory=set)
    acr: dict[str, str] = field(default_factory=dict)  # registry -> ACR instance id

    def add_private(self, server: str, username: str, password: str) -> None:
        self.private[registry_key(server)] = (username, password)

    def add_acr(self, server: str, instance_id: str) -> None:
        key = registry_key(server)
        self.acr[key] = instance_id
        # Without the instance named, an ACR Enterprise registry is private as any other.
        self.private.setdefault(key, ("acr", f"{instance_id}-token"))

    def pull_error(self, image: str, credentials: list[tuple[str, str, str]],
                   access: Access | None = None) -> str | None:
        """``None`` if the pull may proceed, else the registry's refusal as a pull reports it.

        ``credentials`` are (server, user, password) from ``ImageRegistryCredential``.
        """
        access = access or Access()
        try:
            norm = _key(image)
        except BadReference as e:
            return f"invalid image reference: {e.reason}"
        server = registry_of(norm)
        prefix = (f"rpc error: code = Unknown desc = failed to pull and unpack image "
                  f"\"{image}\": failed to resolve reference")
        if server in self.plain_http and server not in access.plain_http:
            return (f"{prefix}: failed to do request: Head \"https://{server}/v2/\": http: "
                    "server gave HTTP response to HTTPS client")
        if server in self.self_signed and not ({server} & (access.insecure | access.plain_http)):
            return (f"{prefix}: failed to do request: Head \"https://{server}/v2/\": tls: "
                    "failed to verify certificate: x509: certificate signed by unknown authority")
        if self.acr.get(server) in access.acr_instances:
            return None  # ECI's service role pulls from a named ACR instance without a secret
        wanted = self.private.get(server)
        if wanted is None:
            return None
        for cred_server, user, password in credentials:
            if registry_key(cred_server) == server and (user, password) == wanted:
                return None
        given = any(registry_key(c[0]) == server for c in credentials)
        why = "wrong username or password" if given else "no credentials for this registry"
        return (f"{prefix}: pull access denied, {server} requires "
                f"authorization: {why}: 401 Unauthorized")
