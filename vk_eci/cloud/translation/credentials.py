"""``imagePullSecrets`` → ECI ``ImageRegistryCredential`` entries.

Reads ``kubernetes.io/dockerconfigjson`` (``{"auths": {server: entry}}``) and
``kubernetes.io/dockercfg`` (``{server: entry}``) secrets, where an entry carries ``auth``
(base64 of ``user:password``) or ``username``/``password``. A pull secret that does not exist is
skipped, as the kubelet does (public images still pull); a secret that exists but cannot be read
is :class:`InvalidInput` naming the secret and what is wrong, never its content.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.provider import SecretData

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"


@dataclass(frozen=True)
class RegistryCredential:
    server: str
    username: str
    password: str = field(repr=False)


def _server(raw: str) -> str:
    # Docker config keys may be URLs ("https://index.docker.io/v1/"); ECI wants the host.
    text = raw.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text.split("/", 1)[0]


def _entry(secret: str, server: str, entry: Any) -> RegistryCredential:
    what = f"image pull secret {secret}"
    if not isinstance(entry, Mapping):
        raise InvalidInput(what, f"entry for {server} is not an object")
    user, password = entry.get("username"), entry.get("password")
    if not (user and password) and entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise InvalidInput(what, f"auth of {server} is not base64 'user:password'") from e
        user, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidInput(what, f"auth of {server} has no ':' between user and password")
    if not user or not password:
        raise InvalidInput(what, f"entry for {server} has neither auth nor username/password")
    return RegistryCredential(_server(server), str(user), str(password))


def parse_pull_secret(name: str, secret: SecretData) -> list[RegistryCredential]:
    """The registry credentials in one pull secret."""
    what = f"image pull secret {name}"
    if secret.type == DOCKER_CONFIG_JSON:
        key = ".dockerconfigjson"
    elif secret.type == DOCKER_CFG:
        key = ".dockercfg"
    else:
        raise InvalidInput(what, f"type {secret.type!r} is neither {DOCKER_CONFIG_JSON} "
                                 f"nor {DOCKER_CFG}")
    raw = secret.data.get(key)
    if raw is None:
        raise InvalidInput(what, f"has no {key} key")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        # The decoder's message quotes the text, which could hold the password: leave it out.
        raise InvalidInput(what, f"{key} is not valid JSON") from e
    if secret.type == DOCKER_CONFIG_JSON:
        doc = doc.get("auths") if isinstance(doc, Mapping) else None
    if not isinstance(doc, Mapping):
        raise InvalidInput(what, f"{key} has no registry entries")
    return [_entry(name, server, entry) for server, entry in doc.items()]


def registry_credentials(names: Sequence[str],
                         secrets: Mapping[str, SecretData]) -> list[RegistryCredential]:
    """Credentials of every existing pull secret in ``names``, one per registry (first wins)."""
    out: dict[str, RegistryCredential] = {}
    for name in dict.fromkeys(names):  # a secret listed many times is read once
        secret = secrets.get(name)
        if secret is None:
            continue
        for cred in parse_pull_secret(name, secret):
            out.setdefault(cred.server, cred)
    return list(out.values())


def pull_secret_credentials(pod: Any,
                            secrets: Mapping[str, SecretData]) -> list[RegistryCredential]:
    """The credentials of the pod's own ``imagePullSecrets``. A secret that cannot be read
    gives none here (translation reports it and refuses the pod)."""
    spec = getattr(pod, "spec", None)
    names = [s.name for s in getattr(spec, "image_pull_secrets", None) or [] if s.name]
    try:
        return registry_credentials(names, secrets)
    except InvalidInput:
        return []

