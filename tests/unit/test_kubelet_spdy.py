"""SPDY/3.1 framing of the kubelet's exec: streams by type, replies, stdin and its end, resizes,
pings, and the end of a session — fed frames as the Go client writes them."""

from __future__ import annotations

import asyncio
import struct
import zlib

from vk_eci.kubelet import spdy
from vk_eci.kubelet.exec import ExecRequest
from vk_eci.kubelet.spdy_dictionary import DICTIONARY


class Transport:
    def __init__(self) -> None:
        self.out, self.closed = b"", False

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class GoClient:
    """The caller's header compressor: one zlib context with the dictionary, as spdystream."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def syn_stream(self, stream: int, kind: str, fin: bool = False) -> bytes:
        block = struct.pack(">I", 1)
        for text in ("streamtype", kind):  # Go's framer lowercases header names
            block += struct.pack(">I", len(text)) + text.encode()
        body = struct.pack(">IIBB", stream, 0, 0, 0) + self.z.compress(block) + \
            self.z.flush(zlib.Z_SYNC_FLUSH)
        return spdy.control(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0, body)


def frames(data: bytes) -> list[tuple[bool, int, int, bytes]]:
    """(control?, type or stream id, flags, payload) of each frame written."""
    out, pos = [], 0
    while pos < len(data):
        first, second = struct.unpack_from(">II", data, pos)
        length = second & 0xFFFFFF
        payload = data[pos + 8:pos + 8 + length]
        control = bool(first & 0x80000000)
        out.append((control, first & 0xFFFF if control else first, second >> 24, payload))
        pos += 8 + length
    return out


async def test_streams_stdin_resize_ping_and_the_end() -> None:
    reader, transport = asyncio.StreamReader(), Transport()
    req = ExecRequest(("sh",), stdin=True, stdout=True, stderr=False, tty=True)
    session = spdy.SpdySession(reader, transport, req)  # type: ignore[arg-type]
    task = asyncio.create_task(session.read_frames())
    go = GoClient()
    for stream, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")):
        reader.feed_data(go.syn_stream(stream, kind))
    assert await session.wait_ready()
    assert session.streams == {"error": 1, "stdin": 3, "stdout": 5, "resize": 7}
    replies = [f for f in frames(transport.out) if f[0] and f[1] == spdy.SYN_REPLY]
    assert [struct.unpack(">I", p[:4])[0] for _, _, _, p in replies] == [1, 3, 5, 7]

    reader.feed_data(spdy.data_frame(3, b"ls\r"))
    reader.feed_data(spdy.data_frame(7, b'{"Width":80,"Height":24}{"Width":1'))
    reader.feed_data(spdy.data_frame(7, b'00,"Height":30}'))
    reader.feed_data(spdy.data_frame(3, b"", fin=True))
    reader.feed_data(spdy.control(spdy.PING, 0, struct.pack(">I", 9)))
    reader.feed_eof()
    got = [frame async for frame in session.incoming()]
    assert got == [(0, b"ls\r"), (4, b'{"Width": 80, "Height": 24}'),
                   (4, b'{"Width": 100, "Height": 30}'), (255, b"\x00")]
    assert (True, spdy.PING, 0, struct.pack(">I", 9)) in frames(transport.out)

    transport.out = b""
    await session.send(1, b"out")
    await session.send(2, b"no stderr stream: dropped")
    await session.send_status({"metadata": {}, "status": "Success"})
    written = frames(transport.out)
    assert written[0] == (False, 5, 0, b"out")
    assert written[1] == (False, 1, 0, b'{"metadata": {}, "status": "Success"}')
    assert {(f[1], f[2]) for f in written[2:6]} == {(s, spdy.FLAG_FIN) for s in (1, 3, 5, 7)}
    assert written[6][:2] == (True, spdy.GOAWAY) and transport.closed
    await task


def test_header_blocks_round_trip_through_one_context_each_way() -> None:
    ours, theirs = spdy.Headers(), spdy.Headers()
    for headers in ({"streamtype": "stdout"}, {}, {"a": "1", "b": "two"}):
        assert theirs.decode(ours.encode(headers)) == headers
