"""``KubeletServer``: the virtual node's kubelet HTTPS API (docs/KUBELET_API.md) on aiohttp.

Routes: ``/containerLogs/{ns}/{pod}/{container}``, ``/exec/{ns}/{pod}/{container}`` (GET/POST,
WebSocket), ``/stats/summary``, ``/metrics/resource``, ``/healthz``, ``/pods``, ``/runningpods/``;
``/attach`` and ``/portForward`` answer 405 with a ``Status`` saying ECI cannot do them.
Every request is authenticated and authorised first (:mod:`vk_eci.kubelet.auth`); errors of the
cloud map to HTTP statuses in one place (:func:`_eci_status`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import (
    EciError,
    GroupForgotten,
    InvalidInput,
    NotFound,
    Retryable,
    Throttled,
)
from vk_eci.kubelet import exec as exec_api
from vk_eci.kubelet import logs, pods, spdy, stats
from vk_eci.kubelet.auth import (
    Authenticator,
    Authorizer,
    Forbidden,
    Identity,
    Unauthorized,
    identity_from_cert,
)
from vk_eci.kubelet.sessions import SessionLimiter, SessionLimits, TooManySessions
from vk_eci.kubelet.tls import server_context, watch_certificate
from vk_eci.log import kubelet_logger as log
from vk_eci.metrics import Metrics
from vk_eci.provider import PodIO

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY = web.RequestKey("identity", Identity)


@dataclass(frozen=True)
class KubeletConfig:
    """Where and how the kubelet API serves. ``hosts`` go into a self-signed certificate."""

    node_name: str = "virtual-kubelet"
    host: str = "0.0.0.0"
    port: int = 10250
    hosts: tuple[str, ...] = ("127.0.0.1",)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None
    follow_interval: float = logs.FOLLOW_INTERVAL
    stats_ttl: float = stats.STATS_TTL
    auth_ttl: float = 60.0
    auth_denied_ttl: float = 10.0
    tls_reload_interval: float = 10.0  # seconds between checks of the certificate files
    sessions: SessionLimits = field(default_factory=SessionLimits)
    exec_timeouts: exec_api.ExecTimeouts = field(default_factory=exec_api.ExecTimeouts)

    @classmethod
    def from_settings(cls, settings: Any, node_ip: str) -> KubeletConfig:
        """From ``vk_eci.config.Settings`` (fields read with defaults, so that an older
        Settings without the TLS flags still works)."""
        hosts = tuple(dict.fromkeys((node_ip, settings.node_name, "localhost", "127.0.0.1")))
        return cls(node_name=settings.node_name, port=settings.kubelet_port, hosts=hosts,
                   host=getattr(settings, "kubelet_address", None) or "0.0.0.0",
                   tls_cert_file=getattr(settings, "tls_cert_file", None),
                   tls_key_file=getattr(settings, "tls_key_file", None),
                   client_ca_file=getattr(settings, "client_ca_file", None),
                   sessions=SessionLimits(
                       per_node=getattr(settings, "kubelet_max_sessions", 64),
                       per_namespace=getattr(settings, "kubelet_max_sessions_per_namespace", 16),
                       per_user=getattr(settings, "kubelet_max_sessions_per_user", 8)),
                   exec_timeouts=exec_api.ExecTimeouts(
                       idle=getattr(settings, "kubelet_exec_idle_timeout", 4 * 3600.0),
                       max_duration=getattr(settings, "kubelet_exec_max_duration",
                                            24 * 3600.0)))


def _eci_status(e: EciError) -> int:
    if isinstance(e, GroupForgotten):
        # Not 404: the API server hands kubectl a 400's text but replaces a 404's with "the
        # server could not find the requested resource", and this answer must say why.
        return 400
    if isinstance(e, NotFound):
        return 404
    if isinstance(e, InvalidInput):
        return 400
    if isinstance(e, (Throttled, Retryable)):
        return 503
    return 500 if e.http_status >= 500 or not e.http_status else 400


UNSUPPORTED = {
    "attach": "attach is not supported by the virtual node: ECI offers no way to join a running "
              "container's own stdin/stdout; use `kubectl logs -f` to follow its output or "
              "`kubectl exec -it` to run a new command",
    "port-forward": "port-forward is not supported by the virtual node: ECI has no tunnel into "
                    "the pod's network; expose the port with a Service instead",
}


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


def _reserved(namespace: str, pod: str) -> web.Response:
    """403 for the node's own container in a group: not the tenant's to read or enter."""
    return web.json_response({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"container {naming.PROXY_CONTAINER} of pod {namespace}/{pod} is the virtual "
                   "node's kube-proxy, not the pod's: its logs and exec are refused",
        "reason": "Forbidden", "code": 403}, status=403)


def _refused(e: TooManySessions) -> web.Response:
    """429 as a ``metav1.Status``: client-go shows its message as is ("Error from server
    (TooManyRequests): …"). No Retry-After, so that kubectl reports it instead of retrying."""
    log.warning("%s", e)
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": f"too many sessions: {e}",
                              "reason": "TooManyRequests", "code": 429}, status=429)


class KubeletServer:
    """The kubelet API of one virtual node: ``await start()`` / ``await stop()``, or ``run()``."""

    def __init__(self, config: KubeletConfig, api_client: client.ApiClient, pod_io: PodIO, *,
                 authenticator: Authenticator | None = None,
                 authorizer: Authorizer | None = None, metrics: Metrics | None = None) -> None:
        self.config = config
        self.pod_io = pod_io
        self.api_client = api_client
        self.authenticator = authenticator or Authenticator(
            api_client, ttl=config.auth_ttl, denied_ttl=config.auth_denied_ttl)
        self.authorizer = authorizer or Authorizer(
            api_client, config.node_name, ttl=config.auth_ttl,
            denied_ttl=config.auth_denied_ttl)
        self.usage = stats.UsageCache(pod_io, ttl=config.stats_ttl)
        self.sessions = SessionLimiter(config.sessions, metrics)
        self.started = dt.datetime.now(dt.UTC)
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._reloader: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Any, api_client: client.ApiClient, pod_io: PodIO,
                      node_ip: str, metrics: Metrics | None = None) -> KubeletServer:
        return cls(KubeletConfig.from_settings(settings, node_ip), api_client, pod_io,
                   metrics=metrics)

    # ---- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_middleware])
        r = app.router
        r.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        r.add_route("GET", "/exec/{namespace}/{pod}/{container}", self._exec)
        r.add_route("POST", "/exec/{namespace}/{pod}/{container}", self._exec)
        r.add_route("GET", "/exec/{namespace}/{pod}/{uid}/{container}", self._exec)
        r.add_route("POST", "/exec/{namespace}/{pod}/{uid}/{container}", self._exec)
        # Both spellings of each list: client-go cleans a trailing slash away (a Go client's
        # `.../proxy/runningpods/` arrives as `/runningpods`), and the virtual-kubelet library
        # answers both, so tools written against it send either.
        for path in ("/pods", "/pods/"):
            r.add_get(path, self._pods)
        for path in ("/runningpods/", "/runningpods"):
            r.add_get(path, self._running_pods)
        for path in ("/attach/{tail:.+}", "/portForward/{tail:.+}"):
            r.add_route("GET", path, self._unsupported)
            r.add_route("POST", path, self._unsupported)
        r.add_get("/stats/summary", self._summary)
        r.add_get("/metrics/resource", self._resource_metrics)
        r.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> None:
        ctx = await server_context(cert_file=self.config.tls_cert_file,
                                   key_file=self.config.tls_key_file,
                                   client_ca=self.config.client_ca_file,
                                   node_name=self.config.node_name, hosts=self.config.hosts)
        # handler_cancellation: a `logs -f` whose client left is cancelled, not kept polling.
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = _bind(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=ctx).start()
        cert, key = self.config.tls_cert_file, self.config.tls_key_file
        if cert is not None and key is not None:
            self._reloader = asyncio.create_task(
                watch_certificate(ctx, cert, key, interval=self.config.tls_reload_interval),
                name="kubelet-tls-reload")
        log.info("kubelet API on https://%s:%d (client CA %s)", self.config.host, self.port,
                 self.config.client_ca_file or "none: bearer tokens only")

    async def stop(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reloader
            self._reloader = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run(self) -> None:
        """Serve until cancelled (the runner's component shape)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # ---- authentication and authorisation ---------------------------------------------------

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler,
                               ) -> web.StreamResponse:
        segments = request.path.split("/")[1:]
        if any(seg in ("", ".", "..") for seg in segments[:-1]) or segments[-1] in (".", ".."):
            # A path the router and the authoriser could read differently: refused outright.
            return _text(400, f"path {request.path!r} has empty or dot segments")
        try:
            who = await self._authenticate(request)
        except Unauthorized as e:
            log.info("refused %s %s: %s", request.method, request.path, e)
            return _text(401, "Unauthorized")
        try:
            await self.authorizer.authorize(who, request.method, request.path)
        except Forbidden as e:
            log.info("refused %s %s: %s", request.method, request.path, e)
            return _text(403, f"Forbidden: {e}")
        except Exception as e:
            log.warning("authorisation of %s %s failed: %s", request.method, request.path, e)
            return _text(500, "Authorization error: the API server could not be asked")
        request[IDENTITY] = who
        return await handler(request)

    async def _authenticate(self, request: web.Request) -> Identity:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        who = identity_from_cert(peercert)
        if who is not None:
            return who
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("no client certificate and no bearer token")
        try:
            return await self.authenticator.authenticate(token.strip())
        except Unauthorized:
            raise
        except Exception as e:
            # As kubelet: a review that could not be made is not an authentication.
            raise Unauthorized(f"the token could not be reviewed: {type(e).__name__}") from e

    # ---- handlers ---------------------------------------------------------------------------

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        if container == naming.PROXY_CONTAINER:
            return _reserved(ns, pod)
        try:
            options, follow = logs.parse_query(request.query)
        except logs.BadQuery as e:
            return _text(400, str(e))
        what = f"container {container!r} of pod {ns}/{pod}"
        try:
            if not follow:
                text = await self.pod_io.container_logs(ns, pod, container, options)
                return web.Response(text=text, content_type="text/plain")
            # The cap first: a refused session costs ECI nothing.
            with self.sessions.open(request[IDENTITY], ns, f"logs -f of {what}"):
                # Ask once before streaming so that an unknown pod is a 404, not an empty 200.
                if await self.pod_io.container_state(ns, pod, container) is None:
                    return _text(404, f"{what} is not running in ECI")
                response = web.StreamResponse(headers={"Content-Type": "text/plain"})
                await response.prepare(request)
                try:
                    await logs.follow(self.pod_io, ns, pod, container, options, response.write,
                                      interval=self.config.follow_interval)
                except ConnectionError:
                    pass
                except EciError as e:  # headers are sent: the stream can only end
                    log.warning("logs -f of %s ended: %s", what, e)
            with suppress(ConnectionError):
                await response.write_eof()
            return response
        except TooManySessions as e:
            return _refused(e)
        except EciError as e:
            return _text(_eci_status(e), f"logs of {what}: {e}")

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        if request.match_info["container"] == naming.PROXY_CONTAINER:
            return _reserved(ns, pod)
        try:
            with self.sessions.open(request[IDENTITY], ns, f"exec in pod {ns}/{pod}"):
                timeouts = self.config.exec_timeouts
                if spdy.wants_spdy(request):  # API servers before 1.36
                    return await spdy.handle(request, self.pod_io, timeouts)
                return await exec_api.handle(request, self.pod_io, timeouts)
        except TooManySessions as e:
            return _refused(e)

    async def _pods(self, _: web.Request) -> web.Response:
        try:
            body = await pods.bound_pod_list(self.api_client, self.config.node_name)
        except client.ApiException as e:
            return _text(503 if e.status in (429, 500, 503, 504) else 500,
                         f"pods bound to node {self.config.node_name!r} from the API server: "
                         f"HTTP {e.status} {e.reason}")
        return web.json_response(body)

    async def _running_pods(self, _: web.Request) -> web.Response:
        try:
            running = await self.pod_io.running_pods()
        except EciError as e:
            return _text(_eci_status(e), f"running pods from ECI: {e}")
        return web.json_response(pods.running_pod_list(running))

    async def _unsupported(self, request: web.Request) -> web.Response:
        what = "attach" if request.path.startswith("/attach") else "port-forward"
        message = UNSUPPORTED[what]
        log.info("refused %s %s: %s", request.method, request.path, message)
        status = exec_api.failure_status(message, reason="MethodNotAllowed", code=405)
        return web.json_response({"kind": "Status", "apiVersion": "v1", **status}, status=405)

    async def _summary(self, _: web.Request) -> web.Response:
        try:
            pods = await self.usage.get()
        except EciError as e:
            return _text(_eci_status(e), f"pod usage from ECI: {e}")
        body = stats.summary(self.config.node_name, self.started, pods)
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def _resource_metrics(self, _: web.Request) -> web.Response:
        error = False
        pods: Sequence[Any] = []
        try:
            pods = await self.usage.get()
        except EciError as e:
            log.warning("resource metrics: pod usage from ECI failed: %s", e)
            error = True
        return web.Response(body=stats.resource_metrics(list(pods), error=error).encode(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


__all__ = ["KubeletConfig", "KubeletServer"]
