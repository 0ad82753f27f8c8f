"""``/exec/{ns}/{pod}/{container}``: non-interactive commands over Kubernetes' channel protocol.

``kubectl exec`` reaches the kubelet through the API server as a WebSocket with subprotocol
``v5.channel.k8s.io`` (``v4`` and the base64 forms for older clients): every binary message is a
channel byte and data — 0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize. When the command
ends the status goes on channel 3 as a ``metav1.Status`` JSON (v4+) and the socket closes.
ECI's synchronous ``ExecContainerCommand`` returns the whole output at once and no stdin or tty
session, so interactive requests are refused with a status that says so. SPDY is not spoken:
the node declares ``ExtendWebSocketsToKubelet`` so the API server proxies WebSockets through.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from vk_eci.cloud.errors import EciError, NotFound
from vk_eci.log import kubelet_logger as log
from vk_eci.provider import ExecResult, PodIO

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
             "channel.k8s.io", "base64.channel.k8s.io")
INTERACTIVE_REFUSED = ("interactive exec (stdin or tty) is not supported by the virtual node: "
                       "ECI runs commands to completion; run it without -i/-t")


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


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and drop) what the client sends — stdin is refused, v5 close signals need no
    answer — so that control frames are handled; returns when the client closes."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
            return


async def run_exec(pod_io: PodIO, namespace: str, pod: str, container: str,
                   req: ExecRequest) -> tuple[ExecResult | None, dict[str, Any]]:
    """Run the command; the result (None when it could not run) and the status to send."""
    if req.stdin or req.tty:
        return None, failure_status(INTERACTIVE_REFUSED, reason="BadRequest", code=400)
    if not req.command:
        return None, failure_status("no command given: add one or more command=… parameters",
                                    reason="BadRequest", code=400)
    try:
        result = await pod_io.exec_in_container(namespace, pod, container, req.command)
    except NotFound as e:
        return None, failure_status(f"container {container!r} of pod {namespace}/{pod} not "
                                    f"found in ECI: {e.message}", reason="NotFound", code=404)
    except EciError as e:
        return None, failure_status(f"ECI could not run the command in container "
                                    f"{container!r} of pod {namespace}/{pod}: {e}")
    if result.exit_code:
        return result, exit_status(req.command, result.exit_code)
    return result, success_status()


async def handle(request: web.Request, pod_io: PodIO) -> web.StreamResponse:
    namespace, pod = request.match_info["namespace"], request.match_info["pod"]
    container = request.match_info["container"]
    req = parse_request(request.query)
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None)
    if not ws.can_prepare(request).ok:
        upgrade = request.headers.get("Upgrade", "")
        hint = "SPDY is not supported; " if upgrade.upper().startswith("SPDY") else ""
        return web.json_response(
            failure_status(f"{hint}exec needs a WebSocket upgrade with subprotocol "
                           f"{PROTOCOLS[0]} or {PROTOCOLS[1]}", reason="BadRequest", code=400),
            status=400)
    await ws.prepare(request)
    chan = ChannelSocket(ws)
    drain = asyncio.create_task(_drain(ws), name="exec-drain")
    work = asyncio.create_task(run_exec(pod_io, namespace, pod, container, req),
                               name="exec-run")
    try:
        await asyncio.wait({drain, work}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # the client left first: nobody to answer
            work.cancel()
            return ws
        result, status = work.result()
        if result is not None:
            if req.stdout and result.stdout:
                await chan.send(STDOUT, result.stdout.encode())
            if req.stderr and result.stderr:
                await chan.send(STDERR, result.stderr.encode())
        await chan.send_status(status)
        log.info("exec in %s/%s/%s: %s", namespace, pod, container, status["status"],
                 extra={"pod": f"{namespace}/{pod}", "container": container})
    except ConnectionError:
        pass  # the client went away mid-answer
    finally:
        for task in (work, drain):
            task.cancel()
        await asyncio.gather(work, drain, return_exceptions=True)
        await ws.close()
    return ws
