"""Who the node is to ECI: a static :class:`AccessKey` (tests, the emulator) or a client of
Alibaba's credential chain, checked by :func:`credential_from_env` before anything is contacted.

Apart from :mod:`vk_eci.cloud.api.client` because finding a credential is about the process's
environment, not about calling ECI; the client takes whichever of the two it is given
(``EciClientConfig.credential``). Both names are still importable from the client module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AccessKey:
    """A static access key pair (tests, the emulator). The secret never shows in a repr."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


class CredentialError(Exception):
    """No Alibaba Cloud credential could be found; the message names what to set."""


def credential_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """A credential client from Alibaba's standard chain, checked before anything is contacted.

    Accepts an access key pair (``ALIBABA_CLOUD_ACCESS_KEY_ID``/``…_SECRET``, plus
    ``ALIBABA_CLOUD_SECURITY_TOKEN`` for STS), RRSA (``ALIBABA_CLOUD_ROLE_ARN``,
    ``ALIBABA_CLOUD_OIDC_PROVIDER_ARN``, ``ALIBABA_CLOUD_OIDC_TOKEN_FILE``), an ECS RAM role
    (``ALIBABA_CLOUD_ECS_METADATA``), a credentials URI or a credentials file; raises
    :class:`CredentialError` naming the missing variable otherwise. Values are never echoed.
    """
    env = os.environ if environ is None else environ

    def has(name: str) -> bool:
        return bool(env.get(name, "").strip())

    key_id, secret = "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
    if has(key_id) != has(secret):
        missing = secret if has(key_id) else key_id
        raise CredentialError(f"{missing} is not set (the other half of the access key is)")
    rrsa = ("ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE")
    if not has(key_id) and any(has(n) for n in rrsa) and not all(has(n) for n in rrsa):
        missing = next(n for n in rrsa if not has(n))
        raise CredentialError(f"{missing} is not set (RRSA needs {', '.join(rrsa)})")
    others = ("ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_CREDENTIALS_URI",
              "ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_PROFILE")
    if not has(key_id) and not all(has(n) for n in rrsa) and not any(has(n) for n in others):
        raise CredentialError(
            f"no Alibaba Cloud credential found: set {key_id} and {secret}, or the RRSA "
            f"variables ({', '.join(rrsa)}), or ALIBABA_CLOUD_ECS_METADATA (RAM role name)")
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig

    if has(key_id):
        token = env.get("ALIBABA_CLOUD_SECURITY_TOKEN", "").strip()
        config = CredentialConfig(type="sts" if token else "access_key",
                                  access_key_id=env[key_id].strip(),
                                  access_key_secret=env[secret].strip(),
                                  security_token=token or None)
        return CredentialClient(config)
    # RRSA / RAM role / URI / file: let the SDK's default chain pick what is configured.
    return CredentialClient()


def caller_identity(environ: Mapping[str, str] | None = None) -> str:
    """What names the ECI account this process spends, from the same variables as
    :func:`credential_from_env`: the access key id, else the RAM role (RRSA ARN or ECS role
    name), else where the credentials come from. Never the secret; callers hash it before it
    leaves the process (processes sharing one account's rate limits find each other by it).
    STS keys rotate: give such fleets ``--eci-account``."""
    env = os.environ if environ is None else environ
    for kind, name in (("ak", "ALIBABA_CLOUD_ACCESS_KEY_ID"), ("rrsa", "ALIBABA_CLOUD_ROLE_ARN"),
                       ("ecs", "ALIBABA_CLOUD_ECS_METADATA"),
                       ("uri", "ALIBABA_CLOUD_CREDENTIALS_URI"),
                       ("file", "ALIBABA_CLOUD_CREDENTIALS_FILE"),
                       ("profile", "ALIBABA_CLOUD_PROFILE")):
        value = env.get(name, "").strip()
        if value:
            return f"{kind}:{value}"
    return "default"
