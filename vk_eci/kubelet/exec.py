"""``/exec/{ns}/{pod}[/{uid}]/{container}``: commands in ECI, interactive or not, bridged.

``kubectl exec`` reaches the kubelet through the API server as a WebSocket with subprotocol
``v5.channel.k8s.io`` (``v4`` and the base64 forms for older clients): every binary message is a
channel byte and data — 0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize, 255 close. When
the command ends its status goes on channel 3 as a ``metav1.Status`` JSON (v4+) and the socket
closes. Every command runs through ECI's exec stream (``ExecContainerCommand`` with
``Sync=false``, :meth:`PodIO.open_exec`): stdin, the tty and its resizes go to ECI, stdout,
stderr and the exit status come back (:func:`bridge`). API servers before 1.36 speak SPDY/3.1
to the kubelet instead; that upgrade is served by :mod:`vk_eci.kubelet.spdy` on the same path.

Both paths end a session that moved no byte either way for :attr:`ExecTimeouts.idle` seconds
(the kubelet's ``--streaming-connection-idle-timeout``, 4 h) or that has lasted
:attr:`ExecTimeouts.max_duration` seconds, so that idle or endless sessions cannot hold the
node's session caps forever (docs/SECURITY.md, "Exec streams").
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from vk_eci.cloud.api.errors import EciError, NotFound
from vk_eci.log import kubelet_logger as log
from vk_eci.provider import ExecStream, PodIO

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
             "channel.k8s.io", "base64.channel.k8s.io")


CLOSE_GRACE = 30.0  # seconds the last status and close may wait for a caller who reads slowly


@dataclass(frozen=True)
class ExecTimeouts:
    """0 turns either off."""

    idle: float = 4 * 3600.0
    max_duration: float = 24 * 3600.0

    def deadline(self, started: float, last: float) -> float | None:
        """When a session that began at ``started`` and last moved data at ``last`` ends."""
        ends = [t for t, on in ((last + self.idle, self.idle > 0),
                                (started + self.max_duration, self.max_duration > 0)) if on]
        return min(ends) if ends else None

    def reason(self, started: float, now: float) -> str:
        if self.max_duration > 0 and now - started >= self.max_duration:
            return (f"the exec session reached its maximum length of {self.max_duration:g} s "
                    "(--kubelet-exec-max-duration)")
        return (f"the exec session moved no data for {self.idle:g} s "
                "(--kubelet-exec-idle-timeout)")


class _Clock:
    """Moves the bridge's deadline on activity; at most once a second (or a quarter of the
    idle timeout), as each move costs a timer."""

    def __init__(self, timeouts: ExecTimeouts) -> None:
        self.timeouts = timeouts
        self.loop = asyncio.get_running_loop()
        self.started = self.last = self.moved = self.loop.time()
        self.scope: asyncio.Timeout | None = None

    def touch(self) -> None:
        self.last = now = self.loop.time()
        if self.scope is not None and now - self.moved >= min(1.0, self.timeouts.idle / 4):
            self.moved = now
            self.scope.reschedule(self.timeouts.deadline(self.started, now))


@dataclass(frozen=True)
class ExecRequest:
    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _flag(query: MultiMapping[str], *names: str) -> bool:
    return any(query.get(n, "").lower() in ("1", "true") for n in names)


def parse_request(query: MultiMapping[str]) -> ExecRequest:
    """Kubelet's exec options: ``command`` repeated; ``input``/``output``/``error``/``tty`` as the
    API server sends them (``stdin``/``stdout``/``stderr`` accepted too)."""
    return ExecRequest(command=tuple(query.getall("command", ())),
                       stdin=_flag(query, "input", "stdin"),
                       stdout=_flag(query, "output", "stdout"),
                       stderr=_flag(query, "error", "stderr"), tty=_flag(query, "tty"))


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(command: Sequence[str], code: int) -> dict[str, Any]:
    """kubelet's status for a command that exited non-zero (client-go reads the cause)."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{list(command)}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str, reason: str = "InternalError", code: int = 500,
                   ) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason,
            "details": {"causes": [{"message": message}]}, "code": code}


class ChannelSocket:
    """Writes channel frames in the negotiated encoding (raw binary or base64 text)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        protocol = ws.ws_protocol or ""
        self.base64 = "base64" in protocol
        self.status_json = protocol.startswith(("v4.", "v5."))

    async def send(self, channel: int, data: bytes) -> None:
        if self.base64:
            await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
        else:
            await self.ws.send_bytes(bytes([channel]) + data)

    async def send_status(self, status: Mapping[str, Any]) -> None:
        if self.status_json:
            await self.send(ERROR, json.dumps(status).encode())
        elif status.get("status") != "Success":
            await self.send(ERROR, str(status.get("message", "")).encode())


class ClientStreams(Protocol):
    """The caller's side of an exec (WebSocket or SPDY), in channel numbers."""

    async def send(self, channel: int, data: bytes) -> None: ...

    async def send_status(self, status: Mapping[str, Any]) -> None: ...

    def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        """stdin (0), resize (4) and close (255) frames until the caller is gone."""
        ...


class WebSocketStreams(ChannelSocket):
    """:class:`ClientStreams` over the channel-protocol WebSocket."""

    async def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY and msg.data:
                yield msg.data[0], bytes(msg.data[1:])
            elif msg.type == WSMsgType.TEXT and msg.data:
                yield int(msg.data[0]), base64.b64decode(msg.data[1:])
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                return


async def _upstream(client: ClientStreams, eci: ExecStream, req: ExecRequest,
                    clock: _Clock) -> None:
    """The caller's stdin, resizes and close signal to ECI; when the caller is gone, ECI's
    stream is closed so that the command sees the end of its input and the bridge ends."""
    try:
        async for channel, data in client.incoming():
            clock.touch()
            if (channel == STDIN and req.stdin) or channel in (RESIZE, CLOSE):
                await eci.send(channel, data)
    finally:
        await eci.close()


async def bridge(client: ClientStreams, pod_io: PodIO, namespace: str, pod: str,
                 container: str, req: ExecRequest, timeouts: ExecTimeouts | None = None) -> str:
    """Run ``req`` in ECI and copy the streams both ways; returns the final status word.
    Every write to the caller waits for it to be taken, so a caller who stops reading stops
    the copy (and ECI's stream behind it) instead of filling the node's memory."""
    where = f"container {container!r} of pod {namespace}/{pod}"
    if not req.command:
        status = failure_status("no command given: add one or more command=… parameters",
                                reason="BadRequest", code=400)
        await client.send_status(status)
        return str(status["status"])
    try:
        eci = await pod_io.open_exec(namespace, pod, container, req.command, tty=req.tty,
                                     stdin=req.stdin)
    except NotFound as e:
        status = failure_status(f"{where} not found in ECI: {e.message}", reason="NotFound",
                                code=404)
        await client.send_status(status)
        return str(status["status"])
    except EciError as e:
        status = failure_status(f"ECI could not run the command in {where}: {e}")
        await client.send_status(status)
        return str(status["status"])
    clock = _Clock(timeouts or ExecTimeouts())
    up = asyncio.create_task(_upstream(client, eci, req, clock), name="exec-upstream")
    final: dict[str, Any] | None = None
    try:
        async with asyncio.timeout_at(clock.timeouts.deadline(clock.started, clock.last)) as scope:
            clock.scope = scope
            while (frame := await eci.receive()) is not None:
                clock.touch()
                channel, data = frame
                if (channel == STDOUT and req.stdout) or (channel == STDERR and req.stderr):
                    await client.send(channel, data)
                elif channel == ERROR:
                    final = json.loads(data)
    except TimeoutError:
        if clock.scope is None or not clock.scope.expired():
            raise
        reason = clock.timeouts.reason(clock.started, clock.loop.time())
        log.info("exec in %s ended: %s", where, reason)
        final = failure_status(f"{reason}: closed by the node", reason="Timeout", code=408)
    finally:
        up.cancel()
        await asyncio.gather(up, return_exceptions=True)
        await eci.close()
    if final is None:
        final = failure_status(f"ECI ended the exec stream of {where} without an exit status")
    with suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_GRACE):  # a caller who stopped reading gets no more
            await client.send_status(final)
    return str(final.get("status"))


async def handle(request: web.Request, pod_io: PodIO,
                 timeouts: ExecTimeouts | None = None) -> web.StreamResponse:
    namespace, pod = request.match_info["namespace"], request.match_info["pod"]
    container = request.match_info["container"]
    req = parse_request(request.query)
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None)
    if not ws.can_prepare(request).ok:
        return web.json_response(
            failure_status(f"exec needs an upgrade: WebSocket with subprotocol {PROTOCOLS[0]} "
                           f"or {PROTOCOLS[1]}, or SPDY/3.1", reason="BadRequest", code=400),
            status=400)
    await ws.prepare(request)
    try:
        outcome = await bridge(WebSocketStreams(ws), pod_io, namespace, pod, container, req,
                               timeouts)
        log.info("exec in %s/%s/%s: %s", namespace, pod, container, outcome,
                 extra={"pod": f"{namespace}/{pod}", "container": container})
    except ConnectionError:
        pass  # the client went away mid-answer
    finally:
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await ws.close()
        except TimeoutError:  # a caller who stopped reading: the connection is dropped
            if request.transport is not None:
                request.transport.abort()
    return ws
