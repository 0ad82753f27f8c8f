"""The HTTP face: ECI's RPC endpoint (``POST /``) and the ``/__emulator/*`` control paths
(faults, pause/resume, registries, state, clock, and ``usage``: ``{"cpu": 0.9, "groups": [ids]}``
sets the CPU load the groups' metrics report; all groups when ``groups`` is left out). An
emulator bound beyond loopback answers control paths only with its control token in the
``X-Emulator-Token`` header (anyone who reaches it could otherwise pause it, read its state or
register registry passwords).

A request goes: pause gate -> signature -> action lookup -> version -> region -> recorded ->
injected fault -> rate limit -> handler. Answers are Alibaba's JSON, errors included.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vk_eci.emulator import (
    actions_caches,
    actions_create,
    actions_groups,
    actions_misc,
    actions_status,
    actions_tags,
    exec_ws,
    validate,
)
from vk_eci.emulator.catalog import registry_key
from vk_eci.emulator.context import ENVELOPE, Ctx
from vk_eci.emulator.errors import ApiError, throttled
from vk_eci.emulator.faults import Faults
from vk_eci.emulator.groups import container_run, status
from vk_eci.emulator.params import unflatten
from vk_eci.emulator.ratelimit import RateLimiter
from vk_eci.emulator.render import RawList
from vk_eci.emulator.shell import FileSystem
from vk_eci.emulator.signature import Verifier
from vk_eci.emulator.state import State
from vk_eci.log import emulator_logger

API_VERSION = "2018-08-08"
HOST_ID = "eci.aliyuncs.com"
TOKEN_HEADER = "X-Emulator-Token"
# A handler may answer later (an exec into a container that runs for real).
Handler = Callable[[Ctx], dict[str, Any] | Awaitable[dict[str, Any]]]

ACTIONS: dict[str, Handler] = {
    "CreateContainerGroup": actions_create.create_container_group,
    "DescribeContainerGroups": actions_groups.describe_container_groups,
    "DescribeContainerGroupStatus": actions_status.describe_container_group_status,
    "DeleteContainerGroup": actions_groups.delete_container_group,
    "UpdateContainerGroup": actions_groups.update_container_group,
    "DescribeContainerGroupEvents": actions_groups.describe_container_group_events,
    "DescribeContainerLog": actions_groups.describe_container_log,
    "ExecContainerCommand": actions_groups.exec_container_command,
    "DescribeMultiContainerGroupMetric": actions_misc.describe_multi_container_group_metric,
    "DescribeContainerGroupMetric": actions_misc.describe_container_group_metric,
    "DescribeRegions": actions_misc.describe_regions,
    "CreateImageCache": actions_caches.create_image_cache,
    "DescribeImageCaches": actions_caches.describe_image_caches,
    "UpdateImageCache": actions_caches.update_image_cache,
    "DeleteImageCache": actions_caches.delete_image_cache,
    "TagResources": actions_tags.tag_resources,
}
# Actions Alibaba answers without a RegionId.
NO_REGION = frozenset({"DescribeRegions"})


class Service:
    """Everything a request needs; one per emulator."""

    def __init__(self, state: State, faults: Faults, verifier: Verifier,
                 limiter: RateLimiter) -> None:
        self.state = state
        self.faults = faults
        self.verifier = verifier
        self.limiter = limiter
        self.endpoint = ""
        self.records: dict[str, list[dict[str, str]]] = {}
        self.request_count = 0
        # Required on the control paths when set (the emulator is bound beyond loopback).
        self.control_token: str | None = None
        self.peers: set[Any] = set()  # client (address, port) pairs: one per connection

    def recorded(self, action: str) -> list[dict[str, str]]:
        return list(self.records.get(action, []))

    def set_cpu_load(self, load: float, ids: list[str] | None = None) -> list[str]:
        """From now on the groups ``ids`` (all existing ones when None) use ``load`` (0..1) of
        their containers' CPU, as their metrics report it."""
        wanted = sorted(self.state.groups) if ids is None else list(ids)
        missing = [gid for gid in wanted if gid not in self.state.groups]
        if missing:
            raise KeyError(f"no container group {', '.join(missing)}")
        now = self.state.now()
        for gid in wanted:
            actions_misc.set_cpu_load(self.state.groups[gid], float(load), now)
        return wanted

    async def exec_stream(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket behind an ``ExecContainerCommand`` address (one use, 30 s, while the
        container runs)."""
        session = self.state.exec_sessions.pop(request.query.get("s", ""), None)
        now = self.state.now()
        if session is None or session.expires <= now:
            return web.Response(status=404, text="exec session unknown or expired\n")
        group = self.state.groups.get(session.group_id)
        c = next((c for c in group.containers if c.name == session.container),
                 None) if group else None
        run = container_run(group, c, self.state.timing, now) if group and c else None
        if run is None or run.phase != "Running":
            return web.Response(status=409, text="the container is not running\n")
        if c is not None and c.live is not None:
            return await exec_ws.serve_live(request, session, c.live)
        fs = self.state.filesystems.setdefault((session.group_id, session.container),
                                               FileSystem())
        return await exec_ws.serve(request, session, fs)

    # ---- ECI API -------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4()).upper()
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername"))
        if self.faults.paused:
            if self.faults.pause_mode == "reset":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # aiohttp drops the aborted connection quietly
            await self.faults.wait_resumed()
        try:
            body = await request.read()
            result = await self._dispatch(request, body)
        except ApiError as e:
            return _error(e, request_id)
        except Exception:  # a bug must still answer like Alibaba, and be logged
            emulator_logger.exception("emulator: unhandled error in %s",
                                      request.headers.get("x-acs-action", "?"))
            return _error(ApiError("InternalError", "The request processing has failed due to "
                                   "some unknown error.", 500), request_id)
        result["RequestId"] = request_id
        return web.Response(body=encode(result), content_type="application/json")

    async def _dispatch(self, request: web.Request, body: bytes) -> dict[str, Any]:
        pairs = list(request.query.items())
        if body and request.content_type == "application/x-www-form-urlencoded":
            from urllib.parse import parse_qsl

            pairs.extend(parse_qsl(body.decode(), keep_blank_values=True))
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.verifier.verify(request.method, request.path, pairs, headers, body)
        flat = dict(pairs)
        action = headers.get("x-acs-action") or flat.get("Action", "")
        handler = ACTIONS.get(action)
        if handler is None:
            raise ApiError("InvalidAction.NotFound", f"Specified api {action!r} is not found, "
                           "please check your url and method.", 404)
        version = headers.get("x-acs-version") or flat.get("Version", "")
        if version != API_VERSION:
            raise ApiError("InvalidVersion", f"Specified parameter Version {version!r} is not "
                           f"valid; this API is {API_VERSION}.", 400)
        own = {k: v for k, v in flat.items() if k not in ENVELOPE}
        self.records.setdefault(action, []).append(own)
        self.request_count += 1
        delay = self.faults.delay_for(action)
        if delay:
            await asyncio.sleep(delay)
        injected = self.faults.error_for(action)
        if injected is not None:
            raise injected
        if not self.limiter.allow(action):
            raise throttled(action, self.state.model.throttle_code)
        tree = unflatten(own)
        if action not in NO_REGION:
            validate.region(tree, self.state.region)
        self.state.reap()   # Terminating groups whose end has passed are gone for this request
        ctx = Ctx(self.state, self.faults, tree, own, self.endpoint)
        result = handler(ctx)
        return await result if inspect.isawaitable(result) else result

    # ---- control paths -------------------------------------------------------------
    async def control(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        if self.control_token is not None and not hmac.compare_digest(
                request.headers.get(TOKEN_HEADER, "").encode(), self.control_token.encode()):
            return web.json_response({"error": f"control paths need the emulator's control "
                                      f"token in the {TOKEN_HEADER} header"}, status=401)
        try:
            data: dict[str, Any] = await request.json() if request.can_read_body else {}
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        f = self.faults
        try:
            if what == "faults":
                if request.method == "DELETE":
                    f.clear()
                elif request.method == "POST":
                    for rule in data.get("errors", []):
                        f.inject(rule["action"], rule["code"], float(rule.get("rate", 1.0)),
                                 rule.get("count"), retry_after=rule.get("retry_after"))
                    for action, seconds in data.get("latency", {}).items():
                        f.set_latency(float(seconds), action)
                    if "out_of_stock" in data:
                        f.set_out_of_stock(bool(data["out_of_stock"]))
                return web.json_response(f.snapshot())
            if what == "pause":
                f.pause(str(data.get("mode", "hang")))
                return web.json_response(f.snapshot())
            if what == "resume":
                f.resume()
                return web.json_response(f.snapshot())
            if what == "registries":
                regs = self.state.registries
                for reg in data.get("private", []):
                    regs.add_private(reg["server"], reg["username"], reg["password"])
                regs.plain_http.update(registry_key(r) for r in data.get("plain_http", []))
                regs.self_signed.update(registry_key(r) for r in data.get("self_signed", []))
                for server, instance in data.get("acr", {}).items():
                    regs.add_acr(server, str(instance))
                return web.json_response({"private": sorted(regs.private),
                                          "plain_http": sorted(regs.plain_http),
                                          "self_signed": sorted(regs.self_signed),
                                          "acr": dict(sorted(regs.acr.items()))})
            if what == "preempt" and request.method == "POST":
                expires = self.state.preempt(str(data["group_id"]))
                return web.json_response({"expires": expires})
            if what == "usage" and request.method == "POST":
                ids = self.set_cpu_load(float(data["cpu"]), data.get("groups"))
                return web.json_response({"groups": ids, "cpu": float(data["cpu"])})
            if what == "state":
                self.state.reap()
                return web.json_response({"groups": len(self.state.groups),
                                          "caches": len(self.state.caches.caches),
                                          "requests": self.request_count,
                                          "now": self.state.now(),
                                          "cpu_seconds": time.process_time()})
            if what == "groups":
                # Exact (float) transition times, which answers round to whole seconds:
                # what benchmarks measure status lag against.
                return web.json_response({"groups": transitions(self.state)})
            if what == "clock" and request.method == "POST":
                advance = getattr(self.state.clock, "advance", None)
                if advance is None:
                    return web.json_response({"error": "the clock is real time; only a "
                                              "ManualClock can be advanced"}, status=409)
                advance(float(data.get("seconds", 0)))
                return web.json_response({"now": self.state.now()})
        except (KeyError, TypeError, ValueError) as e:
            return web.json_response({"error": f"bad control request for {what}: {e}"},
                                     status=400)
        return web.json_response({"error": f"unknown control path {what!r}"}, status=404)


def transitions(state: State) -> list[dict[str, Any]]:
    """Each live group's status and exact times: created, Running, ended (epoch seconds)."""
    state.reap()
    now, timing = state.now(), state.timing
    out = []
    for g in state.groups.values():
        st, ended = status(g, timing, now)
        out.append({"id": g.id, "name": g.name, "status": st, "created": g.created,
                    "running": g.running_at if g.running_at is not None and
                    g.running_at <= now else None,
                    "ended": ended})
    return out


def encode(result: dict[str, Any]) -> bytes:
    """JSON of ``result``, splicing :class:`RawList` values (pre-encoded items) in as arrays."""
    raw = {k: v for k, v in result.items() if isinstance(v, RawList)}
    if not raw:
        return json.dumps(result, separators=(",", ":")).encode()
    plain = {k: v for k, v in result.items() if k not in raw}
    text = json.dumps(plain, separators=(",", ":"))[:-1]
    parts = [f"{json.dumps(k)}:[{','.join(v)}]" for k, v in raw.items()]
    return (text + ("," if plain else "") + ",".join(parts) + "}").encode()


def _error(e: ApiError, request_id: str) -> web.Response:
    body = {"RequestId": request_id, "HostId": HOST_ID, "Code": e.code, "Message": e.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={e.code}&product=Eci"}
    headers = {} if e.retry_after_ms is None else {"x-acs-retry-after": str(e.retry_after_ms)}
    return web.Response(status=e.status, body=json.dumps(body).encode(),
                        content_type="application/json", headers=headers)


def make_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("*", "/__emulator/{what}", service.control)
    app.router.add_route("GET", "/exec/", service.exec_stream)
    app.router.add_route("POST", "/", service.handle)
    app.router.add_route("GET", "/", service.handle)
    return app
