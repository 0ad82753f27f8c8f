"""Caps on long-lived kubelet API sessions (``logs -f``, exec) so that nobody can open enough of
them to wear out the node or ECI's shared quota.

Every session counts against three caps: the node's, the target pod's namespace's (a tenant:
the API server proxies every user's ``kubectl logs`` with one identity of its own, so the
namespace is what tells tenants apart), and the caller's own when it authenticated with a token
(a direct client; the API server's client certificate speaks for many users and is held by the
two other caps only). A session over a cap is refused at once with HTTP 429 naming the cap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from vk_eci.kubelet.auth import Identity
from vk_eci.metrics import Metrics


@dataclass(frozen=True)
class SessionLimits:
    per_node: int = 64
    per_namespace: int = 16
    per_user: int = 8


class TooManySessions(Exception):
    """A cap is reached (HTTP 429); the message names the cap and its size."""


class SessionLimiter:
    """Counts open sessions; :meth:`open` is a context manager around one session."""

    def __init__(self, limits: SessionLimits | None = None,
                 metrics: Metrics | None = None) -> None:
        self.limits = limits or SessionLimits()
        self._metrics = metrics
        self.open_sessions = 0
        self._by_namespace: Counter[str] = Counter()
        self._by_user: Counter[str] = Counter()
        self.refused = 0

    @contextmanager
    def open(self, who: Identity, namespace: str, what: str) -> Iterator[None]:
        user = who.user if who.method == "token" else None
        limits = self.limits
        reason = cap = None
        if self.open_sessions >= limits.per_node:
            cap, reason = "node", f"the node already serves {self.open_sessions} sessions " \
                                  f"(at most {limits.per_node})"
        elif self._by_namespace[namespace] >= limits.per_namespace:
            cap, reason = "namespace", f"namespace {namespace!r} already has " \
                f"{self._by_namespace[namespace]} open sessions (at most {limits.per_namespace})"
        elif user is not None and self._by_user[user] >= limits.per_user:
            cap, reason = "user", f"user {user!r} already has {self._by_user[user]} open " \
                                  f"sessions (at most {limits.per_user})"
        if reason is not None:
            self.refused += 1
            if self._metrics is not None:
                self._metrics.kubelet_sessions_refused.labels(cap).inc()
            raise TooManySessions(f"{what} refused: {reason}; close one and try again")
        self._count(+1)
        self._by_namespace[namespace] += 1
        if user is not None:
            self._by_user[user] += 1
        try:
            yield
        finally:
            self._count(-1)
            _decrement(self._by_namespace, namespace)
            if user is not None:
                _decrement(self._by_user, user)

    def _count(self, step: int) -> None:
        self.open_sessions += step
        if self._metrics is not None:
            self._metrics.kubelet_sessions.set(self.open_sessions)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]  # no empty entries left behind by many namespaces/users
