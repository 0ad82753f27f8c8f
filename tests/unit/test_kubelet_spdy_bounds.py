"""The SPDY exec reader under hostile input (docs/SECURITY.md, "Exec streams"): header bombs and
counts, unknown and repeated stream types, nested resize documents, a stdin flood against a
bounded inbox, and a Hypothesis fuzzer of bytes → frames that must only ever end the session."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tracemalloc
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from vk_eci.kubelet import spdy, spdy_frames
from vk_eci.kubelet.exec import ExecRequest
from vk_eci.kubelet.spdy_dictionary import DICTIONARY

from .test_kubelet_spdy import GoClient, Transport, frames

REQ = ExecRequest(("sh",), stdin=True, stdout=True, stderr=False, tty=True)


class AbortableTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = self.closed = True


def session(req: ExecRequest = REQ) -> tuple[asyncio.StreamReader, AbortableTransport,
                                             spdy.SpdySession]:
    reader, transport = asyncio.StreamReader(), AbortableTransport()
    return reader, transport, spdy.SpdySession(reader, transport, req)  # type: ignore[arg-type]


def syn_stream(z: zlib._Compress, stream: int, raw_block: bytes) -> bytes:
    body = struct.pack(">IIBB", stream, 0, 0, 0) + z.compress(raw_block) + \
        z.flush(zlib.Z_SYNC_FLUSH)
    return spdy.control(spdy_frames.SYN_STREAM, 0, body)


def compressor() -> zlib._Compress:
    return zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)


async def run_to_end(reader: asyncio.StreamReader, s: spdy.SpdySession, data: bytes) -> None:
    reader.feed_data(data)
    reader.feed_eof()
    task = asyncio.create_task(s.read_frames())
    got = [frame async for frame in s.incoming()]  # drains the inbox so the reader never waits
    await asyncio.wait_for(task, 5)
    assert len(got) <= 10_000


async def test_a_header_bomb_ends_the_session_without_inflating_it() -> None:
    reader, transport, s = session()
    # 2^32-1 headers claimed, then ~50 MB of zeros that deflate to ~50 KB.
    bomb = struct.pack(">I", 0xFFFFFFFF) + b"\0" * 50_000_000
    tracemalloc.start()
    try:
        await run_to_end(reader, s, syn_stream(compressor(), 1, bomb)[:16 * 1024 + 8])
        await run_to_end(*session()[::2], syn_stream(compressor(), 1, bomb[:8000]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    assert transport.aborted and not s.streams


async def test_a_huge_header_count_in_a_small_block_is_refused_before_any_loop() -> None:
    reader, transport, s = session()
    await run_to_end(reader, s, syn_stream(compressor(), 1, struct.pack(">I", 10**9) + b"x"))
    assert transport.aborted and not s.streams


async def test_only_the_five_stream_types_once_each() -> None:
    reader, transport, s = session()
    go = GoClient()
    data = go.syn_stream(1, "error") + go.syn_stream(3, "bogus") + go.syn_stream(5, "error")
    await run_to_end(reader, s, data)
    assert s.streams == {"error": 1}
    resets = [p for c, kind, _, p in frames(transport.out) if c and kind == spdy_frames.RST_STREAM]
    assert [struct.unpack(">II", p) for p in resets] == [(3, 3), (5, 3)]


async def test_too_many_streams_end_the_session() -> None:
    reader, transport, s = session()
    go = GoClient()
    await run_to_end(reader, s, b"".join(go.syn_stream(2 * i + 1, "x") for i in range(40)))
    assert transport.aborted


async def test_nested_resize_documents_end_the_session_not_the_node() -> None:
    reader, transport, s = session()
    go = GoClient()
    data = go.syn_stream(1, "resize") + spdy.data_frame(1, b"[" * 1000)
    await run_to_end(reader, s, data)
    assert transport.aborted


async def test_resizes_are_parsed_once_and_ignored_without_a_tty() -> None:
    reader, _, s = session(ExecRequest(("sh",), True, True, False, tty=False))
    go = GoClient()
    await run_to_end(reader, s, go.syn_stream(1, "resize") + spdy.data_frame(
        1, b'{"Width":80,"Height":24}' * 10))
    reader, _, s = session()
    reader.feed_data(GoClient().syn_stream(1, "resize") +
                     spdy.data_frame(1, b'{"Width":80}  {"Hei'))
    reader.feed_eof()
    task = asyncio.create_task(s.read_frames())
    got = [frame async for frame in s.incoming()]
    await task
    assert got == [(4, b'{"Width": 80, "Height": 0}')]


async def test_a_stdin_flood_waits_in_a_bounded_inbox() -> None:
    reader, _, s = session()
    go = GoClient()
    reader.feed_data(go.syn_stream(1, "stdin"))
    for _ in range(200):
        reader.feed_data(spdy.data_frame(1, b"x" * 32768))
    task = asyncio.create_task(s.read_frames())
    await asyncio.sleep(0.05)
    # The reader stopped once INBOX_BYTES waited: the rest is still unread in the reader.
    inboxed = spdy.INBOX_BYTES // 32768 + 1
    assert len(reader._buffer) >= (200 - inboxed) * 32776  # type: ignore[attr-defined]
    task.cancel()


async def test_finish_when_the_caller_has_gone() -> None:
    _, transport, s = session()
    transport.closed = True
    await s.finish()
    await s.finish()


Op = tuple[str, int, int, bytes]

_ops = st.lists(st.one_of(
    st.tuples(st.just("raw"), st.just(0), st.just(0), st.binary(max_size=64)),
    st.tuples(st.just("control"), st.sampled_from([1, 2, 3, 4, 6, 7, 8, 9, 77]),
              st.integers(0, 255), st.binary(max_size=300)),
    st.tuples(st.just("syn"), st.integers(0, 9), st.integers(0, 5), st.just(b"")),
    st.tuples(st.just("data"), st.integers(0, 9), st.integers(0, 1),
              st.binary(max_size=200) | st.sampled_from(
                  [b"[" * 2000, b'{"Width":1}', b'{"Width":3,"Height":4}' * 50])),
), max_size=30)
KINDS = ["error", "stdin", "stdout", "stderr", "resize", "x" * 100]


def _bytes(ops: list[Op]) -> bytes:
    """The ops as one caller would write them: SYN_STREAMs from one header compressor (so
    their blocks decode in sequence) among DATA, other control frames and garbage."""
    go, out = GoClient(), b""
    for op, a, b, data in ops:
        if op == "raw":
            out += data
        elif op == "control":
            out += spdy.control(a, b, data)
        elif op == "syn":
            out += go.syn_stream(a, KINDS[b])
        else:
            out += spdy.data_frame(a, data, fin=bool(b))
    return out


@settings(max_examples=300)
@given(_ops)
def test_fuzz_frames_only_ever_end_the_session(ops: list[Op]) -> None:
    """Any bytes: the reader returns (never raises), holds little memory, keeps only the
    exec stream types, and answers only with control frames."""
    async def main() -> AbortableTransport:
        reader, transport, s = session()
        await run_to_end(reader, s, _bytes(ops))
        assert set(s.streams) <= {"error", "stdin", "stdout", "stderr", "resize"}
        return transport

    tracemalloc.start()
    try:
        transport = asyncio.run(main())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    assert all(c for c, *_ in frames(transport.out))  # the node only ever replied with control


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_fuzz_header_blocks_raise_only_spdy_errors(block: bytes) -> None:
    headers = spdy_frames.Headers()
    for data in (block, zlib.compress(block)[2:-4]):
        with contextlib.suppress(spdy_frames.SpdyError):
            headers.decode(data)
