"""Projected service-account tokens: ECI cannot refresh them, so say when one will expire.

The kubelet rewrites a projected ``serviceAccountToken`` file before 80% of its life has passed.
ECI receives the token once, as a ``ConfigFileVolume`` file at creation. The only ECI call that
changes a running group's volumes, ``UpdateContainerGroup``, puts the whole group into
``Updating`` (ECI documents that it may make the containers of a ``RestartPolicy=Never`` group
fail), which is no way to rotate a file every hour; so the node does not refresh it unless the
pod opts in to a refresh by restart (:data:`REFRESH_ANNOTATION`, ``cloud/provider_refresh.py``).
Otherwise, when the token the API server issued (its ``exp`` - ``iat``, read from the JWT; the
API server may extend the requested ``expirationSeconds``) is shorter than the pod may live, a
``TokenExpiresBeforePod`` Warning says when it runs out. "May live" is
``activeDeadlineSeconds`` when set, else at least :data:`ASSUMED_POD_LIFE` (pods without a
deadline run for as long as they are not deleted).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from vk_eci.cloud.translation.context import PodWarning

ASSUMED_POD_LIFE = 30 * 24 * 3600  # seconds; a long-running pod without a deadline
# "restart": the node renews the pod's tokens at 80% of their life by restarting its instance.
REFRESH_ANNOTATION = "vk-eci.io/refresh-volumes"


def token_claims(token: str) -> tuple[float, float] | None:
    """``(iat, exp)`` of a JWT, None when it is no JWT with both claims."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
        return float(int(claims["iat"])), float(int(claims["exp"]))
    except (ValueError, KeyError, TypeError):
        return None


def token_lifetime(token: str) -> int | None:
    """``exp - iat`` of a JWT (seconds), None when it is no JWT with both claims."""
    claims = token_claims(token)
    return None if claims is None else int(claims[1] - claims[0])


def expiry_warning(token: str, source: Any, volume: str, pod_deadline: int | None,
                   refreshed: bool = False) -> PodWarning | None:
    """A Warning when this token runs out before the pod may end (see the module docstring)."""
    if refreshed:
        return None
    life = token_lifetime(token)
    if life is None:
        life = int(source.expiration_seconds or 3600)
    horizon = pod_deadline or ASSUMED_POD_LIFE
    if life >= horizon:
        return None
    limit = (f"its activeDeadlineSeconds ({pod_deadline}s)" if pod_deadline
             else "it may run (no activeDeadlineSeconds)")
    return PodWarning("TokenExpiresBeforePod", (
        f"volume {volume}: the service account token at {source.path} is valid for {life}s, "
        f"less than {limit}, and ECI cannot refresh it; the workload must re-read or re-fetch "
        "its token before then (or opt in to a refresh by restart: {REFRESH_ANNOTATION}: restart)"))
