"""Exec over SPDY/3.1, as API servers before 1.36 call the kubelet.

After ``Upgrade: SPDY/3.1`` (answered 101 with the chosen ``X-Stream-Protocol-Version``, here
``v4.channel.k8s.io``) the caller opens one SPDY stream per channel, named by its
``streamtype`` header: ``error``, ``stdin``, ``stdout``, ``stderr``, ``resize``. Each is
answered with a SYN_REPLY; stdin arrives as DATA (FIN = end of input), resizes as JSON
documents, and the node writes stdout/stderr DATA and, at the end, the ``metav1.Status`` JSON on
the error stream before closing every stream and the session (GOAWAY). Only the frames these
streams need are implemented (SYN_STREAM, SYN_REPLY, DATA, RST_STREAM, PING, GOAWAY; SETTINGS
and WINDOW_UPDATE are read and ignored, as the Go implementation does not enforce flow
control); header blocks use zlib with the SPDY/3 dictionary, one context per direction. No
Python SPDY library is kept up (the one on PyPI was last released in 2021), hence this module.

A caller cannot make the node hold more than a bounded amount for a session (docs/SECURITY.md,
"Exec streams"): frames and header blocks are read under the caps of
:mod:`vk_eci.kubelet.spdy_frames`; only the five stream types above are accepted, once each;
stdin waits in a small inbox (:data:`INBOX_BYTES`) that the frame reader waits on (so a flood
stops being read from the socket, and TCP pushes back on the caller); every write waits for the
socket to drain (so a caller who stops reading stops the command's output, not the node's
memory); any bad frame ends that session only.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_writer import StreamWriter

from vk_eci.kubelet.exec import (
    CLOSE,
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ExecRequest,
    ExecTimeouts,
    bridge,
    parse_request,
)
from vk_eci.kubelet.spdy_frames import (
    FLAG_FIN,
    GOAWAY,
    HEADERS,
    MAX_DATA,
    PING,
    REFUSED_STREAM,
    RST_STREAM,
    SYN_REPLY,
    SYN_STREAM,
    Frame,
    Headers,
    SpdyError,
    SpdyLimits,
    control,
    data_frame,
    read_frame,
)
from vk_eci.log import kubelet_logger as log
from vk_eci.provider import PodIO

PROTOCOL = "v4.channel.k8s.io"
STREAM_WAIT = 30.0  # as the kubelet's streamCreationTimeout
CHANNELS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
            "resize": RESIZE}
# Bytes of the caller's frames waiting for ECI (a larger frame still passes, alone): with the
# read buffer and one DATA frame, a session holds 1.4 MiB of the caller's input at most.
INBOX_BYTES = 256 * 1024
READ_BUFFER = 64 * 1024  # bytes read ahead of the frame reader before the socket is paused
CLOSE_GRACE = 30.0  # seconds a closed session's unsent bytes may wait for the caller

__all__ = ["SpdyError", "SpdyLimits", "SpdySession", "control", "data_frame", "handle"]


def wants_spdy(request: web.Request) -> bool:
    return ("upgrade" in request.headers.get("Connection", "").lower()
            and "spdy/3.1" in request.headers.get("Upgrade", "").lower())


def offered_protocols(request: web.Request) -> list[str]:
    out: list[str] = []
    for value in request.headers.getall("X-Stream-Protocol-Version", []):
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


class _Feeder:
    """aiohttp's payload parser slot after the upgrade: raw bytes into a StreamReader, which
    pauses the socket once :data:`READ_BUFFER` bytes wait unread (and resumes when read)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


async def _no_drain() -> None:
    return None


class SpdySession:
    """One upgraded connection: reads frames in a task, keeps the streams by type, and
    implements :class:`vk_eci.kubelet.exec.ClientStreams` for the exec bridge. ``drain`` waits
    until the socket's write buffer is low again (aiohttp's flow control)."""

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport,
                 req: ExecRequest, limits: SpdyLimits | None = None,
                 drain: Callable[[], Awaitable[None]] = _no_drain) -> None:
        self._reader, self._transport, self._drain = reader, transport, drain
        self.limits = limits or SpdyLimits()
        self._headers = Headers(self.limits)
        self.streams: dict[str, int] = {}
        self._kinds: dict[int, str] = {}  # by stream id: one lookup per DATA frame
        self._opened = 0
        self.wanted = {"error"} | {name for name, on in (
            ("stdin", req.stdin), ("stdout", req.stdout), ("stderr", req.stderr),
            ("resize", req.tty)) if on}
        self._ready = asyncio.Event()
        # The queue itself is unbounded so that its end (None) can always be put; _put bounds
        # the bytes the reader may put before ECI has taken them.
        self._inbox: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._held = 0
        self._taken = asyncio.Event()
        self._resize = b""
        self._closed = False

    # ---- reading ----------------------------------------------------------------------------

    async def read_frames(self) -> None:
        """Until the caller closes the connection; then ``incoming`` ends. A frame over the
        caps or not understood ends this session (and only it)."""
        try:
            while True:
                frame = await read_frame(self._reader, self.limits)
                if frame.control:
                    if await self._on_control(frame):
                        return
                else:
                    await self._on_data(frame.stream, frame.flags, frame.payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except SpdyError as e:
            log.warning("SPDY exec session ended on a bad frame: %s", e)
            self._transport.abort()  # type: ignore[attr-defined]
        finally:
            self._inbox.put_nowait(None)

    async def _on_control(self, frame: Frame) -> bool:
        """Handle one control frame; True when the caller ends the session (GOAWAY)."""
        kind, payload = frame.kind, frame.payload
        if kind == SYN_STREAM:
            await self._on_syn_stream(frame)
        elif kind in (SYN_REPLY, HEADERS):
            # Not used by exec callers, but their header blocks share the session's zlib
            # context: inflated (within the caps) so that later blocks still decode.
            self._headers.decode(payload[4:])
        elif kind == PING:
            await self._write(control(PING, 0, payload[:4]))
        elif kind == GOAWAY:
            return True
        # RST_STREAM, SETTINGS, WINDOW_UPDATE and unknown types: nothing to do here.
        return False

    async def _on_syn_stream(self, frame: Frame) -> None:
        if len(frame.payload) < 10:
            raise SpdyError(f"SYN_STREAM of {len(frame.payload)} bytes")
        self._opened += 1
        if self._opened > self.limits.max_streams:
            raise SpdyError(f"more than {self.limits.max_streams} streams opened")
        (stream,) = struct.unpack_from(">I", frame.payload)
        stream &= 0x7FFFFFFF
        kind = self._headers.decode(frame.payload[10:]).get("streamtype", "")
        if kind not in CHANNELS or kind in self.streams or stream in self._kinds:
            # Only the five exec streams, once each: anything else is refused, not kept.
            log.info("SPDY exec: stream %d of type %r refused", stream, kind[:40])
            await self._write(control(RST_STREAM, 0, struct.pack(">II", stream,
                                                                 REFUSED_STREAM)))
            return
        await self._write(control(SYN_REPLY, 0, struct.pack(">I", stream) +
                                  self._headers.encode({})))
        self.streams[kind], self._kinds[stream] = stream, kind
        if frame.flags & FLAG_FIN:
            await self._on_data(stream, FLAG_FIN, b"")
        if self.wanted <= set(self.streams):
            self._ready.set()

    async def _on_data(self, stream: int, flags: int, data: bytes) -> None:
        kind = self._kinds.get(stream)
        if kind == "stdin":
            if data:
                await self._put((STDIN, data))
            if flags & FLAG_FIN:
                await self._put((CLOSE, bytes([STDIN])))
        elif kind == "resize" and "resize" in self.wanted:
            for size in self._sizes(data):
                await self._put((RESIZE, size))

    def _sizes(self, data: bytes) -> list[bytes]:
        """Complete resize documents in what arrived so far. The unparsed rest is capped
        (a resize is ~30 bytes), so each frame costs at most one parse of that cap."""
        self._resize += data
        if len(self._resize) > self.limits.max_resize:
            raise SpdyError(f"resize stream holds {len(self._resize)} bytes without a "
                            f"complete document (at most {self.limits.max_resize})")
        decoder, out = json.JSONDecoder(), []
        text = self._resize.decode(errors="replace").lstrip()
        while text:
            try:
                size, end = decoder.raw_decode(text)
            except ValueError:
                break
            except RecursionError:
                raise SpdyError("resize document nested too deeply") from None
            if isinstance(size, dict):
                out.append(json.dumps({"Width": _dimension(size.get("Width")),
                                       "Height": _dimension(size.get("Height"))}).encode())
            text = text[end:].lstrip()
        self._resize = text.encode()
        return out

    async def _put(self, frame: tuple[int, bytes]) -> None:
        # Full: the reader waits, the socket fills, TCP pushes back on the caller.
        while self._held and self._held + len(frame[1]) > INBOX_BYTES:
            self._taken.clear()
            await self._taken.wait()
        self._held += len(frame[1])
        self._inbox.put_nowait(frame)

    async def wait_ready(self) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), STREAM_WAIT)
        except TimeoutError:
            return False
        return True

    # ---- ClientStreams ----------------------------------------------------------------------

    async def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        while (frame := await self._inbox.get()) is not None:
            self._held -= len(frame[1])
            self._taken.set()
            yield frame

    async def send(self, channel: int, data: bytes) -> None:
        name = "stdout" if channel == STDOUT else "stderr" if channel == STDERR else ""
        stream = self.streams.get(name)
        if stream is None:
            return
        for i in range(0, len(data), MAX_DATA):
            await self._write(data_frame(stream, data[i:i + MAX_DATA]))

    async def send_status(self, status: Mapping[str, Any]) -> None:
        error = self.streams.get("error")
        if error is not None:
            await self._write(data_frame(error, json.dumps(status).encode()))
        await self.finish()

    async def finish(self) -> None:
        """FIN on every stream, then GOAWAY and close (the kubelet's end of an exec). Never
        raises: a caller who has gone or stopped reading just has the connection dropped."""
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                for stream in self.streams.values():
                    await self._write(data_frame(stream, b"", fin=True))
                await self._write(control(GOAWAY, 0, struct.pack(">II", 0, 0)))
        except (ConnectionError, TimeoutError):
            self._transport.abort()  # type: ignore[attr-defined]
            return
        self._transport.close()

    async def _write(self, frame: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("the caller closed the SPDY connection")
        self._transport.write(frame)  # type: ignore[attr-defined]
        await self._drain()


def _dimension(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value <= 0xFFFF else 0


async def upgrade(request: web.Request, req: ExecRequest) -> tuple[web.StreamResponse,
                                                                   SpdySession | None]:
    """Answer the upgrade; the session (None when no common protocol was offered)."""
    response: web.StreamResponse
    if PROTOCOL not in offered_protocols(request):
        response = web.json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": f"SPDY exec needs X-Stream-Protocol-Version {PROTOCOL}",
             "reason": "BadRequest", "code": 400}, status=400)
        return response, None
    response = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": PROTOCOL})
    await response.prepare(request)
    assert request.protocol is not None and request.transport is not None
    reader = asyncio.StreamReader(limit=READ_BUFFER // 2)  # pauses at twice its limit
    reader.set_transport(request.transport)
    request.protocol.set_parser(_Feeder(reader))  # type: ignore[arg-type]
    writer = StreamWriter(request.protocol, asyncio.get_running_loop())
    return response, SpdySession(reader, request.transport, req, drain=writer.drain)


async def handle(request: web.Request, pod_io: PodIO,
                 timeouts: ExecTimeouts | None = None) -> web.StreamResponse:
    """``/exec`` asked with ``Upgrade: SPDY/3.1``: the same bridge as over WebSocket."""
    namespace, pod = request.match_info["namespace"], request.match_info["pod"]
    container = request.match_info["container"]
    req = parse_request(request.query)
    response, session = await upgrade(request, req)
    if session is None:
        return response
    frames = asyncio.create_task(session.read_frames(), name="spdy-frames")
    try:
        if not await session.wait_ready():
            log.info("SPDY exec in %s/%s/%s: the caller opened %s, not %s", namespace, pod,
                     container, sorted(session.streams), sorted(session.wanted))
            return response
        outcome = await bridge(session, pod_io, namespace, pod, container, req, timeouts)
        log.info("exec (SPDY) in %s/%s/%s: %s", namespace, pod, container, outcome,
                 extra={"pod": f"{namespace}/{pod}", "container": container})
    except ConnectionError:
        pass  # the caller went away mid-answer
    finally:
        await session.finish()
        frames.cancel()
        await asyncio.gather(frames, return_exceptions=True)
    return response
