"""SPDY/3.1 framing for the kubelet's exec (:mod:`vk_eci.kubelet.spdy`): frames and header
blocks read under caps, so that whatever bytes a caller sends cost the node a bounded amount of
memory and CPU (docs/SECURITY.md, "Exec streams").

API servers before 1.36 relay the caller's SPDY bytes to the kubelet unchanged, so every field is
the caller's choice: a frame's length (up to 16 MiB), a header block that inflates a thousandfold,
a header count of 2^32. Hence: control frames are at most :attr:`SpdyLimits.max_control`
bytes, a header block inflates to at most :attr:`SpdyLimits.max_header_block` bytes (and all
of a session's blocks to :attr:`SpdyLimits.max_header_bytes`), holds at most
:attr:`SpdyLimits.max_headers` headers, and a DATA frame is at most :attr:`SpdyLimits.max_data`
bytes. Anything beyond raises :class:`SpdyError`, which ends that session only.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from vk_eci.kubelet.spdy_dictionary import DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
REFUSED_STREAM = 3  # RST_STREAM status code
MAX_DATA = 0xFFFFFF  # the largest DATA frame the length field can say


class SpdyError(Exception):
    """A frame this server cannot or will not make sense of; the session is ended."""


@dataclass(frozen=True)
class SpdyLimits:
    """Caps on what one SPDY session may make the node hold. An exec opens five streams
    whose header blocks are one short ``streamtype`` header each (a few dozen bytes), and
    Go's client writes stdin in DATA frames of 32 KiB: the caps leave ample room for that."""

    max_control: int = 16 * 1024  # bytes of one control frame's payload
    max_header_block: int = 8 * 1024  # inflated bytes of one header block
    max_header_bytes: int = 64 * 1024  # inflated header bytes of a whole session
    max_headers: int = 32  # headers in one block
    max_streams: int = 16  # SYN_STREAMs in a session (known or refused)
    max_data: int = 1024 * 1024  # bytes of one DATA frame
    max_resize: int = 1024  # bytes of a resize document still incomplete


@dataclass(frozen=True)
class Frame:
    control: bool
    kind: int  # the control frame's type; 0 for DATA
    stream: int  # the DATA frame's stream; 0 for control frames
    flags: int
    payload: bytes


class Headers:
    """SPDY/3 header blocks: big-endian 32-bit counts and lengths, zlib with the dictionary,
    one context per direction. Decoding is capped (see :class:`SpdyLimits`)."""

    def __init__(self, limits: SpdyLimits | None = None) -> None:
        self.limits = limits or SpdyLimits()
        self.inflated = 0  # header bytes of this session so far
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        lim = self.limits
        room = min(lim.max_header_block, lim.max_header_bytes - self.inflated)
        try:
            # max_length: inflation stops at the cap instead of producing what a bomb asks.
            raw = self._inflate.decompress(block, max(room, 0) + 1)
        except zlib.error as e:
            raise SpdyError(f"header block does not inflate: {e}") from None
        self.inflated += len(raw)
        if len(raw) > room or self._inflate.unconsumed_tail:
            raise SpdyError(f"header block inflates beyond {room} bytes (at most "
                            f"{lim.max_header_block} a block, {lim.max_header_bytes} a session)")
        if len(raw) < 4:
            raise SpdyError("header block shorter than its count")
        (count,) = struct.unpack_from(">I", raw)
        # Each header takes 8 bytes at least: a count the block cannot hold is refused before
        # any loop runs over it.
        if count > lim.max_headers or 4 + 8 * count > len(raw):
            raise SpdyError(f"header block claims {count} headers (at most {lim.max_headers})")
        pos, out = 4, {}
        for _ in range(count):
            name, pos = _field(raw, pos)
            value, pos = _field(raw, pos)
            out[name.lower()] = value
        return out

    def encode(self, headers: Mapping[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            raw += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def _field(raw: bytes, pos: int) -> tuple[str, int]:
    if pos + 4 > len(raw):
        raise SpdyError("header block ends inside a length")
    (n,) = struct.unpack_from(">I", raw, pos)
    end = pos + 4 + n
    if end > len(raw):
        raise SpdyError("header block ends inside a name or value")
    try:
        return raw[pos + 4:end].decode(), end
    except UnicodeDecodeError:
        raise SpdyError("header name or value is not UTF-8") from None


def control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream & 0x7FFFFFFF,
                       ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


async def read_frame(reader: asyncio.StreamReader, limits: SpdyLimits) -> Frame:
    """The next frame; :class:`asyncio.IncompleteReadError` at the end of the connection,
    :class:`SpdyError` for a frame over the caps or of another SPDY version."""
    first, second = struct.unpack(">II", await reader.readexactly(8))
    flags, length = second >> 24, second & 0xFFFFFF
    if first & 0x80000000:
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise SpdyError(f"SPDY version {version} is not 3")
        if length > limits.max_control:
            raise SpdyError(f"control frame of {length} bytes (at most {limits.max_control})")
        return Frame(True, kind, 0, flags, await reader.readexactly(length))
    if length > limits.max_data:
        raise SpdyError(f"DATA frame of {length} bytes (at most {limits.max_data})")
    return Frame(False, 0, first & 0x7FFFFFFF, flags, await reader.readexactly(length))
