"""Who may act for a node: the process identity, and the guard against two unelected writers.

A node name is served either by one process, or by replicas that elect a leader
(``--node-leader-election``, see :mod:`vk_eci.cluster.kube.leader`): the leader alone writes, the
others keep their caches warm. What must never happen is two processes writing for one node
without an election between them (two Deployments, a stray ``vk-eci run``): both would create
and delete groups for the same pods. The node Lease carries the identity of the process that
renews it (annotation :data:`HOLDER_ANNOTATION`, beside the kubelet's ``holderIdentity`` = node
name), so an unelected process that finds the Lease renewed by someone else refuses to start.
Renewal is judged by watching ``renewTime`` change on *our* clock, never by comparing the
other host's timestamps with ours, so clock skew can neither hide a live writer nor invent one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.log import node_logger

HOLDER_ANNOTATION = "vk-eci.io/holder-identity"
LEASE_NAMESPACE = "kube-node-lease"


class DuplicateNode(RuntimeError):
    """Another process renews this node's Lease and no election is between us."""


def default_identity(environ: Mapping[str, str] | None = None) -> str:
    """``$POD_NAME`` when run as a pod (unique per replica), else the host and a random tag."""
    env = os.environ if environ is None else environ
    return env.get("POD_NAME") or f"{socket.gethostname()}-{secrets.token_hex(3)}"


def _holder(lease: Any) -> tuple[str, str]:
    annotations = (lease.metadata.annotations or {}) if lease.metadata else {}
    renew = lease.spec.renew_time if lease.spec else None
    return annotations.get(HOLDER_ANNOTATION, ""), str(renew or "")


async def ensure_sole_writer(api: client.ApiClient, node_name: str, identity: str,
                             observe_for: float) -> None:
    """Raise :class:`DuplicateNode` if another identity renews ``node_name``'s Lease.

    A Lease last renewed by another identity may be a dead predecessor (a restart, a SIGKILL):
    we watch it for ``observe_for`` seconds (longer than its renew interval) and refuse only if
    it is renewed meanwhile.
    """
    coord = client.CoordinationV1Api(api)

    async def read() -> tuple[str, str] | None:
        try:
            return _holder(await coord.read_namespaced_lease(node_name, LEASE_NAMESPACE))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    first = await read()
    if first is None or first[0] in ("", identity):
        return
    node_logger.info("node Lease %s was last renewed by %s; watching it for %.0fs before "
                     "taking over", node_name, first[0], observe_for)
    await asyncio.sleep(observe_for)
    second = await read()
    if second is not None and second[0] not in ("", identity) and second[1] != first[1]:
        raise DuplicateNode(
            f"node {node_name} is already served by {second[0]}, which renews its Lease "
            f"(kube-node-lease/{node_name}); two processes must not write for one node. Stop "
            "the other one, use another --node-name, or run the replicas with "
            "--node-leader-election")
