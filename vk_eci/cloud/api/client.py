"""``EciClient``: the official ECI SDK (its async calls, over one pooled session) with our
retries, rate limits, paging and metrics.

Every call goes through :meth:`EciClient._call`, which per attempt: takes a token from the
action's bucket, calls the SDK's ``<action>_with_options_async`` on a
:class:`~vk_eci.cloud.api.transport.PooledSdkClient` (the SDK's client sending over one aiohttp
session of ours, at most ``POOL_SIZE`` connections), records ``eci_requests{action,code}`` and
``eci_request_duration{action}``, and on :class:`Throttled`/:class:`Retryable` sleeps an
exponential backoff with full jitter (at least the server's retry-after hint) before the next
attempt, counting ``eci_retries{action,kind}``. Errors leave as our classes from
:mod:`vk_eci.cloud.api.errors`, chained to the SDK exception.

Requests and responses are the SDK's own models (``alibabacloud_eci20180808.models``). Region is
set on every request here because the SDK does not send ``Config.region_id``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_eci20180808 import models as eci
from alibabacloud_tea_openapi import models as openapi

from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.errors import EciError, Permanent, Retryable, Throttled, classify
from vk_eci.cloud.api.lean import lean
from vk_eci.cloud.api.ratelimit import RateLimiter
from vk_eci.cloud.api.reuse import Reuse
from vk_eci.cloud.api.transport import PooledSdkClient, Runtime
from vk_eci.log import cloud_logger
from vk_eci.metrics import Metrics

PAGE_SIZE = 20  # DescribeContainerGroups accepts at most 20 per page and 20 ids per call.
TAG_IDS = 50  # TagResources: at most 50 resource ids per call
STATUS_PAGE_SIZE = 200  # DescribeContainerGroupStatus: 200 a page (ECI's default Limit)
# Connections kept open to ECI's endpoint: more than the pod workers (32 by default), so that
# a status poll never waits for a connection behind a burst of creates (a connection costs a
# socket, no thread). A burst beyond it waits for a connection rather than opening more.
POOL_SIZE = 64
# Calls of one id list (20 ids each) in flight at once: a poll that found hundreds of changed
# groups reads them in a few round trips, not one after another (the rate limiter still
# spaces them within the action's budget).
ID_CALLS_IN_FLIGHT = 4

Tags = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass
class EciClientConfig:
    """How to reach ECI. ``endpoint`` None means the region's public endpoint."""

    region_id: str
    credential: Any  # an alibabacloud_credentials Client, or an AccessKey
    endpoint: str | None = None  # "host:port", never with a scheme
    protocol: str = "https"
    connect_timeout: float = 5.0  # seconds
    read_timeout: float = 30.0  # seconds
    max_attempts: int = 6
    backoff_base: float = 0.2  # seconds; attempt n waits uniform(0, min(cap, base·2^n))
    backoff_cap: float = 20.0
    rate_limits: Mapping[str, float] = field(default_factory=dict)  # per minute, by action
    default_rate_limit: float | None = 600.0  # per minute for actions not listed
    # This process's share of the limits above at start (0 in a fleet: nothing is spent until
    # the fleet counts us; docs/RELIABILITY.md "One account budget").
    rate_share: float = 1.0
    signature_algorithm: str | None = None  # None: the SDK's default (ACS3-HMAC-SHA256)

    def sdk_config(self) -> Any:
        cfg = openapi.Config(region_id=self.region_id, protocol=self.protocol,
                             endpoint=self.endpoint or f"eci.{self.region_id}.aliyuncs.com",
                             connect_timeout=int(self.connect_timeout * 1000),
                             read_timeout=int(self.read_timeout * 1000))
        if isinstance(self.credential, AccessKey):
            cfg.access_key_id = self.credential.access_key_id
            cfg.access_key_secret = self.credential.access_key_secret
            if self.credential.security_token:
                cfg.security_token = self.credential.security_token
        else:
            cfg.credential = self.credential
        if self.signature_algorithm:
            cfg.signature_algorithm = self.signature_algorithm
        return cfg


def _tag_list(tags: Tags | None, model: Callable[..., Any]) -> list[Any] | None:
    if not tags:
        return None
    items = tags.items() if isinstance(tags, Mapping) else tags
    return [model(key=k, value=v) for k, v in items]


def _chunks(items: Sequence[str], size: int = PAGE_SIZE) -> list[list[str]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


async def _per_chunk(chunks: Sequence[list[str] | None],
                     read: Callable[[list[str] | None], Awaitable[list[Any]]]) -> list[Any]:
    """``read`` of every chunk, at most ID_CALLS_IN_FLIGHT at once, joined in chunk order.
    After a failure no further chunk is read (the same error would likely answer it, and each
    call spends the action's budget); the first failure in chunk order is raised once the
    calls in flight have ended, so none is left running."""
    if len(chunks) == 1:
        return await read(chunks[0])
    gate = asyncio.Semaphore(ID_CALLS_IN_FLIGHT)
    failed = False

    async def one(chunk: list[str] | None) -> list[Any]:
        nonlocal failed
        async with gate:
            if failed:
                return []
            try:
                return await read(chunk)
            except Exception:
                failed = True
                raise

    parts = await asyncio.gather(*(one(c) for c in chunks), return_exceptions=True)
    out: list[Any] = []
    for part in parts:
        if isinstance(part, BaseException):
            raise part
        out.extend(part)
    return out


class EciClient:
    """Async ECI API client; see the module docstring for the retry and metric behaviour."""

    def __init__(self, config: EciClientConfig, metrics: Metrics | None = None, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.region_id = config.region_id
        self._sdk = PooledSdkClient(config.sdk_config(), pool_size=POOL_SIZE,
                                    connect_timeout=config.connect_timeout,
                                    read_timeout=config.read_timeout)
        self._metrics = metrics
        self._limiter = RateLimiter(config.rate_limits,
                                    default_per_minute=config.default_rate_limit)
        if config.rate_share != 1.0:
            self._limiter.set_share(config.rate_share)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._runtime = Runtime(
            autoretry=False, read_timeout=int(config.read_timeout * 1000),
            connect_timeout=int(config.connect_timeout * 1000), max_idle_conns=POOL_SIZE)
        self.closed = False

    async def close(self) -> None:
        """Close the pooled connections; a call made after this raises."""
        self.closed = True
        await self._sdk.close()

    def set_rate_share(self, share: float) -> None:
        """This process's share of the account's rate limits (set by the fleet membership)."""
        self._limiter.set_share(share)

    # ---- the retry loop -------------------------------------------------------------------

    def backoff(self, attempt: int, hint: float | None) -> float:
        """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * (2 ** attempt))
        delay = self._rng.uniform(0.0, ceiling)
        if hint is not None:
            delay = max(delay, min(hint, self.config.backoff_cap))
        return delay

    async def _call(self, action: str, method: str, request: Any,
                    retry_on: tuple[type[EciError], ...] = (Throttled, Retryable),
                    budget: str | None = None,
                    on_answer: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """One action with retries on ``retry_on``; returns the response body model. ``budget``
        names a rate budget of its own (``interactive``: kubectl logs/exec), see ratelimit;
        ``on_answer`` is given the parsed body before the SDK reads it (transport.Runtime)."""
        if method.endswith("_async"):
            # Callers name the SDK's method as documented; its async twin is chosen here.
            raise TypeError(f"{action}: name the SDK's {method[:-6]}, not {method}")
        if self.closed:
            # Not an ECI failure to classify and retry: the node is stopping.
            raise RuntimeError(f"{action}: the ECI client is closed")
        if getattr(request, "region_id", "missing") is None:
            request.region_id = self.region_id
        sdk_method = getattr(self._sdk, method + "_async")
        runtime = self._runtime
        if on_answer is not None:
            runtime = copy.copy(runtime)
            runtime.on_answer = on_answer
        guard = self.config.connect_timeout + self.config.read_timeout + 5.0
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.acquire(action, budget)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(guard):  # the socket timeouts bound each read only
                    response = await sdk_method(request, runtime)
            except Exception as exc:  # every SDK failure is mapped to our classes
                err = classify(exc)
                self._observe(action, err.code, started)
                if not isinstance(err, retry_on) or attempt >= self.config.max_attempts:
                    cloud_logger.debug("ECI %s failed: %s", action, err,
                                       extra={"action": action, "attempt": attempt})
                    raise err from exc
                kind = "throttled" if isinstance(err, Throttled) else "retryable"
                if self._metrics is not None:
                    self._metrics.eci_retries.labels(action, kind).inc()
                delay = self.backoff(attempt, err.retry_after)
                cloud_logger.debug("ECI %s %s (%s), retrying in %.2fs", action, kind, err.code,
                                   delay, extra={"action": action, "attempt": attempt})
                await self._sleep(delay)
                continue
            self._observe(action, "OK", started)
            body = getattr(response, "body", None)
            if body is None:
                raise Retryable("BadResponse", f"{action} answered without a body")
            return body

    def _observe(self, action: str, code: str, started: float) -> None:
        if self._metrics is None:
            return
        self._metrics.eci_requests.labels(action, code).inc()
        self._metrics.eci_request_duration.labels(action).observe(time.perf_counter() - started)

    # ---- container groups -----------------------------------------------------------------

    async def create_container_group(self, req: Any) -> str:
        """Create a group; ``req.client_token`` makes a retried create idempotent."""
        if not req.client_token:
            req.client_token = str(uuid.uuid4())
        body = await self._call("CreateContainerGroup",
                                "create_container_group_with_options", req)
        return str(body.container_group_id)

    async def describe_container_groups(
            self, *, ids: Sequence[str] | None = None, tags: Tags | None = None,
            name: str | None = None, status: str | None = None,
            with_event: bool = False, budget: str | None = None,
            omit: Collection[str] = (), reuse: Reuse | None = None) -> list[Any]:
        """Every group matching the filters, all pages; ``ids`` go 20 per call, a few calls at
        once (ID_CALLS_IN_FLIGHT), answered in their order. The models are lean
        (cloud/api/lean.py), without the fields named in ``omit``; with ``reuse``, a group
        whose answer is unchanged is the description held for it (cloud/api/reuse.py)."""
        if ids is not None and not ids:
            return []
        id_sets: list[list[str] | None] = list(_chunks(list(ids))) if ids else [None]

        async def read(chunk: list[str] | None) -> list[Any]:
            groups: list[Any] = []
            token: str | None = None
            while True:
                req = eci.DescribeContainerGroupsRequest(
                    region_id=self.region_id, limit=PAGE_SIZE, next_token=token,
                    container_group_ids=json.dumps(chunk) if chunk else None,
                    container_group_name=name, status=status,
                    tag=_tag_list(tags, eci.DescribeContainerGroupsRequestTag),
                    with_event=True if with_event else None)
                reused: dict[str, Any] = {}
                body = await self._call(
                    "DescribeContainerGroups", "describe_container_groups_with_options", req,
                    budget=budget, on_answer=None if reuse is None else
                    functools.partial(reuse.answered, reused=reused))
                # Kept by the node for as long as the group lives: lean (cloud/api/lean.py).
                for g in body.container_groups or []:
                    held = reused.get(g.container_group_id)
                    groups.append(lean(g, omit) if held is None else held)
                token = body.next_token or None
                if not token or not body.container_groups:
                    return groups

        return await _per_chunk(id_sets, read)

    async def describe_container_group_status(
            self, *, ids: Sequence[str] | None = None, tags: Tags | None = None,
            since_second: int | None = None) -> list[Any]:
        """Statuses (``Data`` items: id, ECI status, PodStatus) of the matching groups, all
        pages; ``since_second`` keeps those whose status changed in the last N seconds (ECI's
        way to poll); ``ids`` go 20 per call."""
        if ids is not None and not ids:
            return []
        id_sets: list[list[str] | None] = list(_chunks(list(ids))) if ids else [None]

        async def read(chunk: list[str] | None) -> list[Any]:
            out: list[Any] = []
            token: str | None = None
            while True:
                req = eci.DescribeContainerGroupStatusRequest(
                    region_id=self.region_id, limit=STATUS_PAGE_SIZE, next_token=token,
                    container_group_ids=json.dumps(chunk) if chunk else None,
                    tag=_tag_list(tags, eci.DescribeContainerGroupStatusRequestTag),
                    since_second=since_second)
                body = await self._call("DescribeContainerGroupStatus",
                                        "describe_container_group_status_with_options",
                                        req)
                out.extend(body.data or [])
                token = body.next_token or None
                if not token or not body.data:
                    return out

        return await _per_chunk(id_sets, read)

    async def delete_container_group(self, group_id: str) -> None:
        """Delete a group; raises :class:`NotFound` when it does not exist."""
        req = eci.DeleteContainerGroupRequest(region_id=self.region_id,
                                              container_group_id=group_id,
                                              client_token=str(uuid.uuid4()))
        await self._call("DeleteContainerGroup", "delete_container_group_with_options", req)

    async def update_container_group(self, req: Any) -> None:
        """``UpdateContainerGroup`` (an ``UpdateContainerGroupRequest``; region filled in)."""
        req.region_id = req.region_id or self.region_id
        if not req.client_token:
            req.client_token = str(uuid.uuid4())
        await self._call("UpdateContainerGroup", "update_container_group_with_options", req)

    async def tag_container_groups(self, ids: Sequence[str], tags: Tags) -> None:
        """Add ``tags`` to groups (a key they carry already takes the new value), 50 ids per
        call as ECI's ``TagResources`` takes them."""
        for chunk in _chunks(list(ids), TAG_IDS):
            req = eci.TagResourcesRequest(region_id=self.region_id, resource_type="ContainerGroup",
                                          resource_id=chunk,
                                          tag=_tag_list(tags, eci.TagResourcesRequestTag))
            await self._call("TagResources", "tag_resources_with_options", req)

    async def describe_container_group_events(self, ids: Sequence[str], *,
                                              since_second: int | None = None) -> list[Any]:
        """Events of the given groups (``Data`` entries, one per group), all pages."""
        out: list[Any] = []
        for chunk in _chunks(list(ids)):
            token: str | None = None
            while True:
                req = eci.DescribeContainerGroupEventsRequest(
                    region_id=self.region_id, container_group_ids=json.dumps(chunk),
                    limit=PAGE_SIZE, next_token=token, since_second=since_second)
                body = await self._call("DescribeContainerGroupEvents",
                                        "describe_container_group_events_with_options", req)
                data = body.data or []
                out.extend(data)
                token = getattr(body, "next_token", None) or None
                if not token or not data:
                    break
        return out

    async def describe_container_log(
            self, group_id: str, container: str, *, tail: int | None = None,
            since_seconds: int | None = None, start_time: str | None = None,
            timestamps: bool | None = None, limit_bytes: int | None = None,
            previous: bool | None = None, budget: str | None = None) -> str:
        """A container's log text (``previous`` is ECI's ``LastTime``)."""
        req = eci.DescribeContainerLogRequest(
            region_id=self.region_id, container_group_id=group_id, container_name=container,
            tail=tail, since_seconds=since_seconds, start_time=start_time, timestamps=timestamps,
            limit_bytes=limit_bytes, last_time=previous)
        body = await self._call("DescribeContainerLog",
                                "describe_container_log_with_options", req, budget=budget)
        return str(body.content or "")

    async def exec_container_command(self, group_id: str, container: str,
                                     command: Sequence[str], *, sync: bool = True,
                                     tty: bool = False, stdin: bool = False,
                                     budget: str | None = None) -> Any:
        """Run ``command`` in a container; returns the body (``SyncResponse`` when sync)."""
        req = eci.ExecContainerCommandRequest(
            region_id=self.region_id, container_group_id=group_id, container_name=container,
            command=json.dumps(list(command)), sync=sync, tty=tty, stdin=stdin)
        # A command is not idempotent and carries no ClientToken: after a timeout or a 5xx it
        # may have run already, so only a throttled (refused, never run) call is tried again.
        return await self._call("ExecContainerCommand",
                                "exec_container_command_with_options", req,
                                retry_on=(Throttled,), budget=budget)

    async def describe_multi_container_group_metric(self, ids: Sequence[str], *,
                                                    metric_type: str | None = None) -> list[Any]:
        """Latest metrics of many groups (``MonitorDatas`` entries), 20 ids per call."""
        out: list[Any] = []
        for chunk in _chunks(list(ids)):
            req = eci.DescribeMultiContainerGroupMetricRequest(
                region_id=self.region_id, container_group_ids=json.dumps(chunk),
                metric_type=metric_type)
            body = await self._call("DescribeMultiContainerGroupMetric",
                                    "describe_multi_container_group_metric_with_options",
                                    req)
            out.extend(body.monitor_datas or [])
        return out

    async def describe_container_group_metric(
            self, group_id: str, *, start_time: str | None = None, end_time: str | None = None,
            period: str | None = None) -> Any:
        """Metric records of one group (the response body)."""
        req = eci.DescribeContainerGroupMetricRequest(
            region_id=self.region_id, container_group_id=group_id, start_time=start_time,
            end_time=end_time, period=period)
        return await self._call("DescribeContainerGroupMetric",
                                "describe_container_group_metric_with_options", req)

    async def describe_regions(self) -> list[Any]:
        """The regions ECI offers: the cheap health call of the node's lease."""
        req = eci.DescribeRegionsRequest(region_id=self.region_id)
        body = await self._call("DescribeRegions", "describe_regions_with_options", req)
        return list(body.regions or [])

    # ---- image caches ---------------------------------------------------------------------

    async def create_image_cache(self, req: Any) -> str:
        """Create an image cache; a ClientToken is added when absent so retries are safe."""
        if not req.client_token:
            req.client_token = str(uuid.uuid4())
        body = await self._call("CreateImageCache", "create_image_cache_with_options", req)
        return str(body.image_cache_id)

    async def describe_image_caches(
            self, *, ids: Sequence[str] | None = None, name: str | None = None,
            tags: Tags | None = None, snapshot_id: str | None = None,
            match_images: Sequence[str] | None = None, full_match: bool | None = None,
            match_count: int | None = None) -> list[Any]:
        """Every cache matching the filters, all pages (one call per id when ``ids`` given,
        since ``ImageCacheId`` takes one id)."""
        if ids is not None and not ids:
            return []
        id_list: list[str | None] = list(ids) if ids else [None]
        out: list[Any] = []
        for cache_id in id_list:
            token: str | None = None
            while True:
                req = eci.DescribeImageCachesRequest(
                    region_id=self.region_id, image_cache_id=cache_id, image_cache_name=name,
                    snapshot_id=snapshot_id, limit=PAGE_SIZE, next_token=token,
                    tag=_tag_list(tags, eci.DescribeImageCachesRequestTag),
                    match_image=list(match_images) if match_images else None,
                    image_full_match=full_match, image_match_count_request=match_count)
                try:
                    body = await self._call("DescribeImageCaches",
                                            "describe_image_caches_with_options", req)
                except Permanent as err:
                    if cache_id is not None and err.code.endswith("NotFound"):
                        break  # an id that does not exist simply matches nothing
                    raise
                out.extend(body.image_caches or [])
                token = body.next_token or None
                if not token or not body.image_caches:
                    break
        return out

    async def update_image_cache(self, req: Any) -> None:
        if not req.client_token:
            req.client_token = str(uuid.uuid4())
        await self._call("UpdateImageCache", "update_image_cache_with_options", req)

    async def delete_image_cache(self, cache_id: str) -> None:
        """Delete an image cache; raises :class:`NotFound` when it does not exist."""
        req = eci.DeleteImageCacheRequest(region_id=self.region_id, image_cache_id=cache_id,
                                          client_token=str(uuid.uuid4()))
        await self._call("DeleteImageCache", "delete_image_cache_with_options", req)


