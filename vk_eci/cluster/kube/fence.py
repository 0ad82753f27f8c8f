"""Fencing: a replica writes for its node only while its leadership is freshly renewed.

Leader election alone leaves a hole every lease-based system has: a leader that pauses (a long
GC, SIGSTOP, a starved VM) resumes believing it still leads, and its queued writes land after a
successor has started. The fence closes it with the holder's own monotonic clock: leadership
counts only until ``renew_deadline`` after the *start* of the last successful renewal, which is
before the Lease can expire for anyone else (``renew_deadline < lease_duration``). Every write
the node makes for its pods and Node — Kubernetes requests through :class:`FencedApiClient`, ECI
creates and deletes through :meth:`Fence.check` in the pod controller — is refused outside it.
A process without an election is never fenced.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from vk_eci.cluster.kube.decode import DecodingApiClient


class Fenced(RuntimeError):
    """A write refused because this replica's leadership is not freshly renewed."""


class Fence:
    """Open forever (no election), or open until a deadline that each renewal moves on."""

    def __init__(self, open_: bool = True) -> None:
        self._until = math.inf if open_ else -math.inf

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def extend(self, until: float) -> None:
        self._until = until

    def close(self) -> None:
        self._until = -math.inf

    @property
    def is_open(self) -> bool:
        return self.now() < self._until

    def check(self, what: str) -> None:
        if not self.is_open:
            raise Fenced(f"not writing {what}: this replica does not hold the node's leadership "
                         "(or has not renewed it in time)")


_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What only the node's writer touches: its Node, pods (and their status), events, the node
# Lease, and the cache advisor's ConfigMap (its record of demand). Not fenced: the
# leader Leases themselves, TokenReview/SubjectAccessReview (every replica serves the kubelet
# API), ImageCaches (their controller elects its own leader; the advisor, which writes them
# for the node's leader only, checks the fence itself before each write).
_FENCED = re.compile(r"^/api/v1/(nodes|namespaces/\{namespace\}/(pods|events|configmaps))(/|$)"
                     r"|^/apis/events\.k8s\.io/")
_NODE_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def fenced_request(method: str, resource_path: str, path_params: dict[str, Any]) -> bool:
    if method.upper() not in _MUTATING:
        return False
    if resource_path.startswith(_NODE_LEASES):
        return path_params.get("namespace") == "kube-node-lease"
    return bool(_FENCED.search(resource_path))


class FencedApiClient(DecodingApiClient):
    """An ``ApiClient`` whose node-writer requests pass :attr:`fence` first (and whose answers
    are decoded fast, :mod:`vk_eci.cluster.kube.decode`)."""

    fence: Fence = Fence()

    def call_api(self, resource_path: str, method: str, path_params: Any = None,
                 *args: Any, **kwargs: Any) -> Any:
        if fenced_request(method, resource_path, path_params or {}):
            self.fence.check(f"{method} {resource_path}")
        return super().call_api(resource_path, method, path_params, *args, **kwargs)
