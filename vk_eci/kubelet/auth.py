"""Who is calling the kubelet API, and may they: delegated to the API server as kubelet does.

Authentication: a client certificate that the TLS layer verified against the cluster's client
CA (user = CN, groups = O), else a bearer token checked with a ``TokenReview``; neither → 401.
Authorisation: a ``SubjectAccessReview`` on ``nodes/<subresource>`` named after the node, verb
from the HTTP method (GET → get, POST → create, …) → 403 when denied. The path → subresource
mapping is the kubelet's own (:func:`subresources_for`): ``stats``, ``metrics`` and ``log`` (for
``/logs/`` only) stand alone, ``pods``/``healthz`` fall back to ``proxy``, and everything else
— container logs, exec, attach, port-forward — needs ``proxy``. Decisions are cached briefly
(keyed by a hash of the token, never the token itself) so that a ``kubectl logs -f`` poll or a
metrics scrape does not cost two API calls each time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubernetes_asyncio import client

from vk_eci.log import kubelet_logger as log
from vk_eci.sharing import TtlCache, single_flight

# Exactly the kubelet's mapping (pkg/kubelet/server/auth.go): other methods have no verb.
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Path → subresources tried in order, as the kubelet's GetRequestAttributes: the read-only
# subresources stats, metrics and log stand alone (log only for /logs/, the node's own log
# files: /containerLogs is proxy); pods, runningpods, healthz and configz fall back to proxy;
# everything else (containerLogs, exec, attach, portForward, run, …) is proxy.
FINE_GRAINED: tuple[tuple[str, str], ...] = (
    ("/pods", "pods"), ("/healthz", "healthz"), ("/configz", "configz"),
    ("/statusz", "statusz"), ("/runningpods", "pods"))
SPECIFIC: tuple[tuple[str, str], ...] = (
    ("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"),
    ("/checkpoint", "checkpoint"), ("/flagz", "flagz"))

T = TypeVar("T")


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    method: str = "token"  # token | x509

    def key(self) -> str:
        """A cache key that no two different identities share: JSON-encoded fields, so that
        a separator inside a user, group or extra value cannot re-split them."""
        extra = sorted((k, list(v)) for k, v in self.extra.items())
        return json.dumps([self.user, list(self.groups), self.uid, extra])


class Unauthorized(Exception):
    """No valid credentials (HTTP 401)."""


class Forbidden(Exception):
    """Authenticated but not allowed (HTTP 403); the message names user, verb and resource."""


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def subresources_for(path: str) -> tuple[str, ...]:
    """The node subresources that authorise ``path``, most specific first (any one allows)."""
    first = next((sub for prefix, sub in FINE_GRAINED if _is_subpath(path, prefix)), None)
    last = next((sub for prefix, sub in SPECIFIC if _is_subpath(path, prefix)), "proxy")
    return (first, last) if first else (last,)


def verb_for(method: str) -> str:
    """The API verb of an HTTP method; "" (never allowed here) for HEAD, OPTIONS and others."""
    return VERBS.get(method.upper(), "")


def identity_from_cert(peercert: Mapping[str, Any] | None) -> Identity | None:
    """The identity of a client certificate already verified by TLS (``ssl`` peercert dict)."""
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and not cn:
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return Identity(user=cn, groups=(*orgs, "system:authenticated"), method="x509")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Bearer tokens through ``TokenReview``; results cached by token hash."""

    def __init__(self, api: client.ApiClient, *, ttl: float = 60.0, denied_ttl: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api = client.AuthenticationV1Api(api)
        self._ttl, self._denied_ttl = ttl, denied_ttl
        self._cache: TtlCache[Identity | bool] = TtlCache(clock=clock)
        self._inflight: dict[str, asyncio.Task[Identity | None]] = {}
        self.reviews = 0  # TokenReviews sent (for tests and debugging of the cache)

    async def authenticate(self, token: str) -> Identity:
        key = _hash(token)
        cached = self._cache.get(key)
        if isinstance(cached, Identity):
            return cached
        if cached is False:
            raise Unauthorized("the bearer token is not valid")
        identity = await single_flight(self._inflight, key, lambda: self._review(token),
                                       name="kubelet-auth-review")
        if identity is None:
            self._cache.put(key, False, self._denied_ttl)
            raise Unauthorized("the bearer token is not valid")
        self._cache.put(key, identity, self._ttl)
        return identity

    async def _review(self, token: str) -> Identity | None:
        self.reviews += 1
        body = client.V1TokenReview(api_version="authentication.k8s.io/v1", kind="TokenReview",
                                    spec=client.V1TokenReviewSpec(token=token))
        review = await self._api.create_token_review(body=body)
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            if status is not None and status.error:
                log.info("token review refused a token: %s", status.error)
            return None
        user = status.user
        return Identity(user=user.username or "", groups=tuple(user.groups or ()),
                        uid=user.uid or "",
                        extra={k: tuple(v) for k, v in (user.extra or {}).items()})


class Authorizer:
    """``SubjectAccessReview`` on ``nodes/<subresource>`` of this node; cached briefly."""

    def __init__(self, api: client.ApiClient, node_name: str, *, ttl: float = 60.0,
                 denied_ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = client.AuthorizationV1Api(api)
        self._node = node_name
        self._ttl, self._denied_ttl = ttl, denied_ttl
        self._cache: TtlCache[bool] = TtlCache(clock=clock)
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self.reviews = 0

    async def authorize(self, who: Identity, method: str, path: str) -> None:
        verb = verb_for(method)
        subs = subresources_for(path)
        if not verb:
            raise Forbidden(f"method {method} has no API verb: nothing on node "
                            f"{self._node!r} allows it")
        for sub in subs:
            if await self._allowed(who, verb, sub):
                return
        raise Forbidden(f"user {who.user!r} may not {verb} nodes/{subs[0]} of node "
                        f"{self._node!r}")

    async def _allowed(self, who: Identity, verb: str, sub: str) -> bool:
        key = json.dumps([who.key(), verb, sub])
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        allowed = await single_flight(self._inflight, key,
                                      lambda: self._review(who, verb, sub),
                                      name="kubelet-auth-review")
        self._cache.put(key, allowed, self._ttl if allowed else self._denied_ttl)
        return allowed

    async def _review(self, who: Identity, verb: str, sub: str) -> bool:
        self.reviews += 1
        spec = client.V1SubjectAccessReviewSpec(
            user=who.user, groups=list(who.groups), uid=who.uid or None,
            extra={k: list(v) for k, v in who.extra.items()} or None,
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group="", version="v1", resource="nodes", subresource=sub,
                name=self._node))
        body = client.V1SubjectAccessReview(api_version="authorization.k8s.io/v1",
                                            kind="SubjectAccessReview", spec=spec)
        review = await self._api.create_subject_access_review(body=body)
        return bool(review.status is not None and review.status.allowed)
