"""ECI's exec WebSocket: what ``ExecContainerCommand`` with ``Sync=false`` points at.

Alibaba documents the address (``wss://eci-<region>.aliyun.com/exec/?s=<token>``, valid 30 s)
but not what travels on it. Its ``/exec/?s=`` form is that of the CRI streaming server, so the
emulator models the stream the way that server speaks it: Kubernetes' channel protocol
(``v5.channel.k8s.io`` or ``v4.channel.k8s.io``): binary messages whose first byte is the
channel — 0 stdin, 1 stdout, 2 stderr, 3 status (a ``metav1.Status`` JSON carrying the exit code
as an ``ExitCode`` cause), 4 terminal resize (``{"Width":…,"Height":…}``), 255 close (v5: the
client's stdin ended). An address works once, for 30 s, while the container runs; the command
runs in :class:`vk_eci.emulator.shell.Shell` over the container's in-memory file system.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from vk_eci.emulator.liveproc import LiveContainer
from vk_eci.emulator.shell import FileSystem, Shell, Stdin

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STATUS, RESIZE, CLOSE = 0, 3, 4, 255
TTL = 30.0


@dataclass(frozen=True)
class ExecSession:
    group_id: str
    container: str
    command: tuple[str, ...]
    tty: bool
    stdin: bool
    expires: float


def status_of(command: tuple[str, ...], code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{list(command)}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def serve(request: web.Request, session: ExecSession, fs: FileSystem) -> web.StreamResponse:
    """Run ``session``'s command over the WebSocket of ``request``."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    stdin = Stdin()
    if not session.stdin:
        stdin.queue.put_nowait(None)

    async def out(channel: int, data: bytes) -> None:
        await ws.send_bytes(bytes([channel]) + data)

    shell = Shell(fs, stdin, out, session.tty)

    async def read() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN and session.stdin and data:
                stdin.queue.put_nowait(bytes(data))
            elif channel == RESIZE:
                size = json.loads(data)
                shell.size = (int(size.get("Height", 0)), int(size.get("Width", 0)))
            elif channel == CLOSE and data[:1] == bytes([STDIN]):
                stdin.queue.put_nowait(None)
        stdin.queue.put_nowait(None)  # the client left: end of input

    reader = asyncio.create_task(read(), name="eci-exec-read")
    try:
        code = await shell.run(list(session.command))
        await out(STATUS, json.dumps(status_of(session.command, code)).encode())
    except ConnectionError:
        pass
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()
    return ws


async def serve_live(request: web.Request, session: ExecSession,
                     live: LiveContainer) -> web.StreamResponse:
    """Run ``session``'s command for real inside a container that runs for real (its network
    and mount namespaces), its stdin, stdout and stderr on the channels. No terminal is
    allocated: with ``tty`` stderr joins stdout, as one terminal stream would."""
    argv = live.exec_argv(list(session.command))
    if argv is None:
        return web.Response(status=409, text="the container is not running\n")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *argv, env=live.spec.environ(), stdin=pipe if session.stdin else asyncio.subprocess.DEVNULL,
        stdout=pipe, stderr=asyncio.subprocess.STDOUT if session.tty else pipe)

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        while stream is not None and (data := await stream.read(32 * 1024)):
            await ws.send_bytes(bytes([channel]) + data)

    async def read() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data or proc.stdin is None:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN and data:
                proc.stdin.write(bytes(data))
                await proc.stdin.drain()
            elif channel == CLOSE and data[:1] == bytes([STDIN]):
                proc.stdin.close()
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()   # the client left: end of input

    reader = asyncio.create_task(read(), name="eci-exec-live-read")
    try:
        await asyncio.gather(pump(proc.stdout, 1), pump(proc.stderr, 2))
        code = await proc.wait()
        await ws.send_bytes(bytes([STATUS]) + json.dumps(
            status_of(session.command, code)).encode())
    except (ConnectionError, BrokenPipeError):
        pass
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()
    return ws
