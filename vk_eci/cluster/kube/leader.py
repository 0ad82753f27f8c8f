"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

However many virtual nodes run, work that must happen once per cluster (the ImageCache
controller) runs only in the process holding the Lease. Expiry is judged by *our* clock from when
we last saw the Lease record change, never by comparing the holder's timestamps with our clock,
so clock skew between hosts cannot make two leaders. A leader that cannot renew within
``renew_deadline`` stops its work before the Lease can expire for the others
(``renew_deadline < lease_duration``), and a leader that stops releases the Lease so that a
successor need not wait out the duration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from vk_eci.cluster.kube.fence import Fence
from vk_eci.log import node_logger

log = node_logger.getChild("leader")


def micro_time(moment: datetime) -> str:
    # MicroTime must carry exactly six fraction digits; datetime.isoformat drops them at .000000.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class _Record:
    holder: str
    duration: int
    renew_time: str
    acquire_time: str
    transitions: int


def _record_of(lease: Any) -> _Record:
    spec = lease.spec

    def stamp(value: Any) -> str:
        return micro_time(value) if isinstance(value, datetime) else str(value or "")

    return _Record(holder=spec.holder_identity or "",
                   duration=int(spec.lease_duration_seconds or 0),
                   renew_time=stamp(spec.renew_time), acquire_time=stamp(spec.acquire_time),
                   transitions=int(spec.lease_transitions or 0))


class LeaderElector:
    """Runs a callable only while this process (``identity``) holds the Lease.

    ``await elector.run(work)`` loops until cancelled: acquire, run ``work()`` while leading,
    cancel it when leadership is lost, try again. ``is_leader`` says what we believe right now.
    """

    def __init__(self, api_client: Any, lease_name: str, namespace: str, identity: str,
                 lease_duration: float = 15, renew_deadline: float = 10,
                 retry_period: float = 2, fence: Fence | None = None) -> None:
        if not (retry_period < renew_deadline < lease_duration):
            raise ValueError("leader election needs retry_period < renew_deadline < "
                             f"lease_duration (got {retry_period}, {renew_deadline}, "
                             f"{lease_duration})")
        # Bodies are plain dicts: the typed V1Lease would serialise MicroTime wrongly.
        self._api: Any = client.CoordinationV1Api(api_client)
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self._leader = False
        self.transitions = 0  # times this process became leader (for tests and logs)
        self.fence = fence

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def try_acquire_or_renew(self, within: float | None = None) -> bool:
        """One attempt; True when we hold the Lease afterwards. API failures count as False,
        and so do a lost connection and an attempt that takes over ``within`` seconds (default
        ``renew_deadline``): a loaded API server must make us retry, not end the election.
        A success opens :attr:`fence` until ``renew_deadline`` after the attempt *began*."""
        started = Fence.now()
        try:
            async with asyncio.timeout(self.renew_deadline if within is None else within):
                held = await self._attempt()
        except (TimeoutError, OSError, aiohttp.ClientError) as e:
            log.warning("%s: Lease %s/%s not written: %s", self.identity, self.namespace,
                        self.lease_name, e or type(e).__name__)
            return False
        if held and self.fence is not None:
            self.fence.extend(started + self.renew_deadline)
        return held

    async def _attempt(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self._api.read_namespaced_lease(self.lease_name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                log.warning("reading Lease %s/%s failed: %s", self.namespace, self.lease_name,
                            e.reason)
                return False
            body = self._body(now, now, transitions=0)
            try:
                await self._api.create_namespaced_lease(self.namespace, body)
            except ApiException as ce:
                if ce.status != 409:
                    log.warning("creating Lease %s/%s failed: %s", self.namespace,
                                self.lease_name, ce.reason)
                return False
            self._observe(_record_of_body(body))
            return True
        record = _record_of(lease)
        if record != self._observed:
            self._observe(record)
        held_by_other = record.holder not in ("", self.identity)
        if held_by_other and self._now() < self._observed_at + max(record.duration, 1):
            return False
        acquire = record.acquire_time if record.holder == self.identity else micro_time(now)
        transitions = record.transitions + (0 if record.holder == self.identity else 1)
        body = self._body(now, acquire, transitions,
                          resource_version=lease.metadata.resource_version)
        try:
            await self._api.replace_namespaced_lease(self.lease_name, self.namespace, body)
        except ApiException as e:
            if e.status != 409:  # 409: someone else wrote it first; they win this round
                log.warning("updating Lease %s/%s failed: %s", self.namespace, self.lease_name,
                            e.reason)
            return False
        self._observe(_record_of_body(body))
        return True

    def _observe(self, record: _Record) -> None:
        self._observed = record
        self._observed_at = self._now()

    def _body(self, now: datetime, acquire: datetime | str, transitions: int,
              resource_version: str | None = None, holder: str | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.lease_name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity if holder is None else holder,
                "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": acquire if isinstance(acquire, str) else micro_time(acquire),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    async def release(self) -> None:
        """Give the Lease up (if we hold it) so that a successor takes over at once."""
        try:
            lease = await self._api.read_namespaced_lease(self.lease_name, self.namespace)
            record = _record_of(lease)
            if record.holder != self.identity:
                return
            now = datetime.now(UTC)
            body = self._body(now, record.acquire_time or now, record.transitions,
                              resource_version=lease.metadata.resource_version, holder="")
            body["spec"]["leaseDurationSeconds"] = 1
            await self._api.replace_namespaced_lease(self.lease_name, self.namespace, body)
            log.info("released Lease %s/%s", self.namespace, self.lease_name)
        except ApiException as e:
            log.warning("releasing Lease %s/%s failed: %s", self.namespace, self.lease_name,
                        e.reason)
        except (OSError, aiohttp.ClientError, TimeoutError) as e:  # it expires instead
            log.warning("releasing Lease %s/%s failed: %s", self.namespace, self.lease_name,
                        e or type(e).__name__)

    async def _acquire(self) -> None:
        while True:
            if await self.try_acquire_or_renew():
                return
            await asyncio.sleep(self.retry_period)

    async def _renew_until_lost(self) -> None:
        last_renewed = self._now()
        while True:
            await asyncio.sleep(self.retry_period)
            # Never past the deadline: by then the work is stopped whatever the answer.
            left = last_renewed + self.renew_deadline - self._now()
            if await self.try_acquire_or_renew(within=max(0.1, left)):
                last_renewed = self._now()
            elif self._now() - last_renewed >= self.renew_deadline or (
                    self._observed is not None and self._observed.holder not in
                    ("", self.identity)):
                return

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work()`` whenever we lead; returns only when cancelled (or ``work`` ends)."""
        while not await self.run_once(work):
            pass

    async def run_once(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Acquire, run ``work()`` while leading. True when ``work`` ended (the Lease is then
        released; a failure of ``work`` is re-raised); False when leadership was lost, after
        ``work`` has been cancelled and awaited, so nothing of it runs any more."""
        await self._acquire()
        self._leader = True
        self.transitions += 1
        log.info("%s leads Lease %s/%s", self.identity, self.namespace, self.lease_name)
        worker = asyncio.create_task(_call(work), name=f"leader:{self.lease_name}")
        renewer = asyncio.create_task(self._renew_until_lost(),
                                      name=f"lease-renew:{self.lease_name}")
        try:
            done, _ = await asyncio.wait({worker, renewer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._leader = False
            if self.fence is not None:
                self.fence.close()
            for task in (worker, renewer):
                task.cancel()
            for task in (worker, renewer):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                await asyncio.shield(self.release())
        if worker in done:
            await asyncio.shield(self.release())
            worker.result()  # re-raise a failure of the work
            return True
        log.warning("%s lost Lease %s/%s; work stopped", self.identity, self.namespace,
                    self.lease_name)
        return False


async def _call(work: Callable[[], Awaitable[None]]) -> None:
    await work()


def _record_of_body(body: dict[str, Any]) -> _Record:
    spec = body["spec"]
    return _Record(holder=spec["holderIdentity"], duration=spec["leaseDurationSeconds"],
                   renew_time=spec["renewTime"], acquire_time=spec["acquireTime"],
                   transitions=spec["leaseTransitions"])
