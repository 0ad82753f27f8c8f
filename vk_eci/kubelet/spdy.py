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
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from vk_eci.kubelet.exec import (
    CLOSE,
    ERROR,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ExecRequest,
    bridge,
    parse_request,
)
from vk_eci.kubelet.spdy_dictionary import DICTIONARY
from vk_eci.log import kubelet_logger as log
from vk_eci.provider import PodIO

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
PROTOCOL = "v4.channel.k8s.io"
STREAM_WAIT = 30.0  # as the kubelet's streamCreationTimeout
MAX_DATA = 0xFFFFFF
CHANNELS = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
            "resize": RESIZE}


class SpdyError(Exception):
    """A frame this server cannot make sense of; the session is ended."""


def wants_spdy(request: web.Request) -> bool:
    return ("upgrade" in request.headers.get("Connection", "").lower()
            and "spdy/3.1" in request.headers.get("Upgrade", "").lower())


def offered_protocols(request: web.Request) -> list[str]:
    out: list[str] = []
    for value in request.headers.getall("X-Stream-Protocol-Version", []):
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


class _Feeder:
    """aiohttp's payload parser slot after the upgrade: raw bytes into a StreamReader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class Headers:
    """SPDY/3 header blocks: big-endian 32-bit counts and lengths, zlib with the dictionary."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        raw = self._inflate.decompress(block)
        (count,), pos, out = struct.unpack_from(">I", raw), 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (v,) = struct.unpack_from(">I", raw, pos)
            out[name.lower()] = raw[pos + 4:pos + 4 + v].decode()
            pos += 4 + v
        return out

    def encode(self, headers: Mapping[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            raw += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream & 0x7FFFFFFF,
                       ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


class SpdySession:
    """One upgraded connection: reads frames in a task, keeps the streams by type, and
    implements :class:`vk_eci.kubelet.exec.ClientStreams` for the exec bridge."""

    def __init__(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport,
                 req: ExecRequest) -> None:
        self._reader, self._transport = reader, transport
        self._headers = Headers()
        self.streams: dict[str, int] = {}
        self.wanted = {"error"} | {name for name, on in (
            ("stdin", req.stdin), ("stdout", req.stdout), ("stderr", req.stderr),
            ("resize", req.tty)) if on}
        self._ready = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self._resize = b""
        self._closed = False

    # ---- reading ----------------------------------------------------------------------------

    async def read_frames(self) -> None:
        """Until the caller closes the connection; then ``incoming`` ends."""
        try:
            while True:
                head = await self._reader.readexactly(8)
                first, second = struct.unpack(">II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                payload = await self._reader.readexactly(length)
                if first & 0x80000000:
                    self._on_control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload)
                else:
                    self._on_data(first & 0x7FFFFFFF, flags, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (SpdyError, struct.error, zlib.error, UnicodeDecodeError) as e:
            log.warning("SPDY exec session ended on a bad frame: %s", e)
        finally:
            self._inbox.put_nowait(None)

    def _on_control(self, version: int, kind: int, flags: int, payload: bytes) -> None:
        if version != VERSION:
            raise SpdyError(f"SPDY version {version} is not 3")
        if kind == SYN_STREAM:
            (stream,) = struct.unpack_from(">I", payload)
            stream &= 0x7FFFFFFF
            kind_name = self._headers.decode(payload[10:]).get("streamtype", "")
            self._write(control(SYN_REPLY, 0, struct.pack(">I", stream) +
                                self._headers.encode({})))
            self.streams[kind_name] = stream
            if flags & FLAG_FIN:
                self._on_data(stream, FLAG_FIN, b"")
            if self.wanted <= set(self.streams):
                self._ready.set()
        elif kind == PING:
            self._write(control(PING, 0, payload[:4]))
        elif kind == GOAWAY:
            self._inbox.put_nowait(None)
        # SYN_REPLY, RST_STREAM, SETTINGS, HEADERS, WINDOW_UPDATE: nothing to do here.

    def _on_data(self, stream: int, flags: int, data: bytes) -> None:
        kind = next((k for k, s in self.streams.items() if s == stream), "")
        if kind == "stdin":
            if data:
                self._inbox.put_nowait((STDIN, data))
            if flags & FLAG_FIN:
                self._inbox.put_nowait((CLOSE, bytes([STDIN])))
        elif kind == "resize":
            self._resize += data
            decoder = json.JSONDecoder()
            text = self._resize.decode(errors="replace").lstrip()
            while text:
                try:
                    size, end = decoder.raw_decode(text)
                except ValueError:
                    break
                self._inbox.put_nowait((RESIZE, json.dumps(size).encode()))
                text = text[end:].lstrip()
            self._resize = text.encode()

    async def wait_ready(self) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), STREAM_WAIT)
        except TimeoutError:
            return False
        return True

    # ---- ClientStreams ----------------------------------------------------------------------

    async def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        while (frame := await self._inbox.get()) is not None:
            yield frame

    async def send(self, channel: int, data: bytes) -> None:
        name = "stdout" if channel == STDOUT else "stderr" if channel == STDERR else ""
        stream = self.streams.get(name)
        if stream is None:
            return
        for i in range(0, len(data), MAX_DATA):
            self._write(data_frame(stream, data[i:i + MAX_DATA]))

    async def send_status(self, status: Mapping[str, Any]) -> None:
        error = self.streams.get("error")
        if error is not None:
            self._write(data_frame(error, json.dumps(status).encode()))
        self.finish()

    def finish(self) -> None:
        """FIN on every stream, then GOAWAY and close (the kubelet's end of an exec)."""
        if self._closed:
            return
        self._closed = True
        for stream in self.streams.values():
            self._write(data_frame(stream, b"", fin=True))
        self._write(control(GOAWAY, 0, struct.pack(">II", 0, 0)))
        self._transport.close()

    def _write(self, frame: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("the caller closed the SPDY connection")
        self._transport.write(frame)  # type: ignore[attr-defined]


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
    reader = asyncio.StreamReader()
    assert request.protocol is not None and request.transport is not None
    request.protocol.set_parser(_Feeder(reader))  # type: ignore[arg-type]
    return response, SpdySession(reader, request.transport, req)


async def handle(request: web.Request, pod_io: PodIO) -> web.StreamResponse:
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
        outcome = await bridge(session, pod_io, namespace, pod, container, req)
        log.info("exec (SPDY) in %s/%s/%s: %s", namespace, pod, container, outcome,
                 extra={"pod": f"{namespace}/{pod}", "container": container})
    except ConnectionError:
        pass  # the caller went away mid-answer
    finally:
        session.finish()
        frames.cancel()
        await asyncio.gather(frames, return_exceptions=True)
    return response
