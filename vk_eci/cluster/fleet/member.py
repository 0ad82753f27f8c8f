"""This process as a member of its ECI account's fleet: its own Lease, the others' through an
:class:`~vk_eci.cluster.kube.informer.Informer`, and the share it may spend
(:mod:`vk_eci.cluster.fleet.shares`; the protocol and its failure cases are in
``docs/RELIABILITY.md`` "One account budget").

The member Lease (``vk-eci-fleet-<identity>`` in the fleet namespace, labelled with the account
key) carries ``holderIdentity``, ``renewTime``, ``leaseDurationSeconds`` and, in annotations,
the view the member counts and the share it applied. Liveness of the others is judged on *our*
clock from when we last saw their Lease change, as :mod:`vk_eci.cluster.kube.leader` does, so
clock skew between hosts cannot make a dead member look alive or a live one dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.fleet.account import ACCOUNT_LABEL, member_lease_name
from vk_eci.cluster.fleet.shares import Decision, Seen, Weight, decide
from vk_eci.cluster.kube.informer import Informer
from vk_eci.cluster.kube.leader import micro_time
from vk_eci.log import fleet_logger as log
from vk_eci.metrics import Metrics

VIEW_ANNOTATION = "vk-eci.io/fleet-view"
SHARE_ANNOTATION = "vk-eci.io/fleet-share"
NODE_ANNOTATION = "vk-eci.io/fleet-node"
WEIGHT_ANNOTATION = "vk-eci.io/fleet-weight"  # the weight it wants, "value@epoch"
COUNTS_ANNOTATION = "vk-eci.io/fleet-counts"  # whom it counts at what: "id=value@epoch,..."
TICK = 0.5  # seconds between checks for expired members when nothing is heard


@dataclass(frozen=True)
class FleetTiming:
    """renew_interval < renew_deadline < lease_duration: a member that cannot renew stops
    spending (share 0) before any other may judge it expired and take its share."""

    # Generous against a loaded API server (a write that takes seconds); a dead member's share
    # returns to the others within lease_duration.
    lease_duration: float = 15.0
    renew_interval: float = 2.0
    renew_deadline: float = 10.0

    def __post_init__(self) -> None:
        if not self.renew_interval < self.renew_deadline < self.lease_duration:
            raise ValueError("fleet timing needs renew_interval < renew_deadline < "
                             f"lease_duration (got {self.renew_interval}, "
                             f"{self.renew_deadline}, {self.lease_duration})")


class FleetMember:
    """``await member.run()`` until cancelled; calls ``set_share(fraction)`` on every change.
    On the way out it stops spending first (share 0), then deletes its Lease."""

    def __init__(self, api: Any, *, namespace: str, account: str, identity: str,
                 node_name: str, set_share: Callable[[float], None],
                 timing: FleetTiming | None = None, metrics: Metrics | None = None,
                 weight: float = 1.0) -> None:
        self._leases: Any = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.account = account
        self.identity = identity
        self.node_name = node_name
        self.lease_name = member_lease_name(identity)
        self._set_share = set_share
        self.timing = timing or FleetTiming()
        self._metrics = metrics
        self.informer = Informer(f"fleet {account}", self._leases.list_namespaced_lease,
                                 namespace, logger=log,
                                 label_selector=f"{ACCOUNT_LABEL}={account}")
        self._wake = asyncio.Event()
        self.informer.add_handler(lambda _k: self._wake.set(), lambda _k, _o: self._wake.set())
        # key -> (renewTime last seen, our clock when it was first seen)
        self._seen: dict[str, tuple[str, float]] = {}
        self._version = ""  # resourceVersion of our last write
        self._renewed_at: float | None = None  # our clock at the start of the last good write
        self._published: tuple[frozenset[str], str] = (frozenset(), "")
        # Epochs start from the wall clock in ms: a restart under the same identity never
        # reuses an epoch that others may still publish counts for (docs/RELIABILITY.md).
        self.wanted = Weight(weight, int(time.time() * 1000))
        self.decision = Decision(view=frozenset({identity}), share=0.0,
                                 waiting_for=frozenset(), applied=0.0)

    def set_weight(self, value: float) -> None:
        """The weight this member wants (1: it writes for its node; ``STANDBY_WEIGHT``: a hot
        standby). A lower one applies at once; a higher one once every live member counts
        it so."""
        if value != self.wanted.value:
            self.wanted = Weight(value, self.wanted.epoch + 1)
            log.info("fleet %s: %s wants weight %.4g", self.account, self.identity, value)
            self._wake.set()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def run(self) -> None:
        self._apply(self.decision)  # nothing is spent before we are counted
        watcher: asyncio.Task[None] | None = None
        try:
            next_renew = retry_at = 0.0
            while True:
                now = self._now()
                decision = self._decide(now, synced=watcher is not None
                                        and self.informer.synced.is_set()
                                        and f"{self.namespace}/{self.lease_name}"
                                        in self.informer.cache)
                self._apply(decision)
                changed = self._publishes(decision) != self._published and now >= retry_at
                if now >= next_renew or changed:
                    if await self._write(decision, within=self._write_budget(now)):
                        self._renewed_at = now
                        self._published = self._publishes(decision)
                        next_renew, retry_at = now + self.timing.renew_interval, 0.0
                        # Listed only after our Lease exists: we see every earlier member.
                        if watcher is None:
                            watcher = asyncio.create_task(self.informer.run(),
                                                          name=f"fleet-informer:{self.account}")
                    else:
                        next_renew = retry_at = self._now() + TICK
                    continue  # decide again at once: a renewal may make us active, a
                    # failure past the renew deadline must stop our spending now
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(TICK, max(0.0, next_renew - now))):
                        await self._wake.wait()
        finally:
            self._set_share(0.0)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await asyncio.shield(self._leave())

    def _write_budget(self, now: float) -> float:
        """How long a write may take: never past our renew deadline, so that a hung API
        server cannot keep us spending after the others may have judged us expired."""
        left = (self._renewed_at + self.timing.renew_deadline - now
                if self._renewed_at is not None else 0.0)
        if left <= 0:  # spending nothing already: take the time a loaded API server needs
            return self.timing.lease_duration
        return max(0.1, min(self.timing.renew_interval, left))

    def _decide(self, now: float, synced: bool) -> Decision:
        others: list[Seen] = []
        live_keys = set()
        for key, lease in self.informer.cache.items():
            live_keys.add(key)
            spec, metadata = lease.spec, lease.metadata
            holder = (spec.holder_identity if spec else "") or ""
            if holder == self.identity or not holder:
                continue
            renew = str(spec.renew_time or "")
            seen = self._seen.get(key)
            if seen is None or seen[0] != renew:
                seen = self._seen[key] = (renew, now)
            duration = max(1, int(spec.lease_duration_seconds or 1))
            annotations = metadata.annotations or {}
            view = frozenset(v for v in annotations.get(VIEW_ANNOTATION, "").split(",") if v)
            counts = parse_counts(annotations.get(COUNTS_ANNOTATION))
            others.append(Seen(holder, view, alive=now - seen[1] < duration,
                               weight=Weight.parse(annotations.get(WEIGHT_ANNOTATION)),
                               counts=counts))
        for key in [k for k in self._seen if k not in live_keys]:
            del self._seen[key]
        renewed = (self._renewed_at is not None
                   and now - self._renewed_at < self.timing.renew_deadline)
        return decide(self.identity, others, renewed=renewed, synced=synced,
                      wanted=self.wanted, applied=self.decision.applied)

    def _publishes(self, decision: Decision) -> tuple[frozenset[str], str]:
        return decision.view, render_counts(decision.counts) + decision.wanted.render()

    def _apply(self, decision: Decision) -> None:
        old = self.decision
        self.decision = decision
        if decision.share != old.share or decision is old:
            self._set_share(decision.share)
            log.info("fleet %s: %s spends %.3f of the account's limits (%d members, weight "
                     "%.4g%s)", self.account, self.identity, decision.share,
                     len(decision.view), decision.applied,
                     f"; waiting for {', '.join(sorted(decision.waiting_for))} to count it"
                     if decision.waiting_for else "")
        if self._metrics is not None:
            self._metrics.fleet_share.set(decision.share)
            self._metrics.fleet_members.set(len(decision.view))

    def _body(self, decision: Decision) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))
        metadata: dict[str, Any] = {
            "name": self.lease_name, "namespace": self.namespace,
            "labels": {ACCOUNT_LABEL: self.account},
            "annotations": {VIEW_ANNOTATION: ",".join(sorted(decision.view)),
                            SHARE_ANNOTATION: f"{decision.share:.4f}",
                            NODE_ANNOTATION: self.node_name,
                            # as decided: a lower weight is published only once applied
                            WEIGHT_ANNOTATION: decision.wanted.render(),
                            COUNTS_ANNOTATION: render_counts(decision.counts)}}
        if self._version:
            metadata["resourceVersion"] = self._version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": {"holderIdentity": self.identity,
                         "leaseDurationSeconds": max(1, round(self.timing.lease_duration)),
                         "renewTime": now}}

    async def _write(self, decision: Decision, within: float) -> bool:
        """Create or renew our Lease with the view we applied; False on any failure."""
        try:
            async with asyncio.timeout(within):
                return await self._write_once(decision)
        except TimeoutError:
            log.warning("fleet %s: writing Lease %s/%s took over %.1fs", self.account,
                        self.namespace, self.lease_name, within)
            return False

    async def _write_once(self, decision: Decision) -> bool:
        try:
            if not self._version:
                try:
                    made = await self._leases.create_namespaced_lease(self.namespace,
                                                                      self._body(decision))
                except ApiException as e:
                    if e.status != 409:
                        raise
                    # Ours from before a restart (same identity), or our own create that
                    # timed out here but was made there: take it over at its version (found
                    # by listing, the call the informer needs anyway: no "get" to grant).
                    found = await self._leases.list_namespaced_lease(
                        self.namespace, field_selector=f"metadata.name={self.lease_name}")
                    if not found.items:
                        return False
                    self._version = found.items[0].metadata.resource_version
                    made = await self._leases.replace_namespaced_lease(
                        self.lease_name, self.namespace, self._body(decision))
            else:
                made = await self._leases.replace_namespaced_lease(
                    self.lease_name, self.namespace, self._body(decision))
        except ApiException as e:
            log.warning("fleet %s: writing Lease %s/%s failed: %s %s", self.account,
                        self.namespace, self.lease_name, e.status, e.reason)
            if e.status in (404, 409):
                self._version = ""  # deleted or changed behind us: read or create again
            return False
        except (OSError, aiohttp.ClientError) as e:
            log.warning("fleet %s: writing Lease %s/%s failed: %s", self.account,
                        self.namespace, self.lease_name, e)
            return False
        self._version = made.metadata.resource_version
        return True

    async def _leave(self) -> None:
        """Delete our Lease (we spend nothing any more): the others grow at once."""
        if not self._version:
            return
        try:
            async with asyncio.timeout(5):
                await self._leases.delete_namespaced_lease(self.lease_name, self.namespace)
            log.info("fleet %s: %s left", self.account, self.identity)
        except (ApiException, OSError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("fleet %s: deleting Lease %s/%s failed (it expires instead): %s",
                        self.account, self.namespace, self.lease_name, e)


def render_counts(counts: Mapping[str, Weight]) -> str:
    return ",".join(f"{who}={w.render()}" for who, w in sorted(counts.items()))


def parse_counts(text: str | None) -> dict[str, Weight] | None:
    """None for an older member (no counts published: it counts its view at weight 1)."""
    if text is None:
        return None
    out: dict[str, Weight] = {}
    for item in text.split(","):
        who, sep, weight = item.partition("=")
        if sep:
            out[who] = Weight.parse(weight)
    return out
