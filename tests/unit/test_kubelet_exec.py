"""vk_eci.kubelet.exec: exec options and the statuses client-go decodes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from multidict import MultiDict

from vk_eci.cloud.api.errors import NotFound, Retryable
from vk_eci.kubelet import exec as ex


def test_parse_request_reads_api_server_and_plain_names() -> None:
    q = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                   ("output", "1"), ("error", "1")])
    assert ex.parse_request(q) == ex.ExecRequest(command=("sh", "-c", "echo hi"), stdin=False,
                                                 stdout=True, stderr=True, tty=False)
    q2 = MultiDict([("command", "ls"), ("stdin", "true"), ("tty", "1")])
    r = ex.parse_request(q2)
    assert r.stdin and r.tty and not r.stdout


def test_exit_status_is_what_client_go_turns_into_an_exit_code() -> None:
    st = ex.exit_status(["false"], 3)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert ex.success_status() == {"metadata": {}, "status": "Success"}


class Stream:
    """ECI's side of one exec: the frames it will send, and what it was sent."""

    def __init__(self, frames: list[tuple[int, bytes]]) -> None:
        self.frames, self.sent, self.closed = list(frames), [], False

    async def send(self, channel: int, data: bytes) -> None:
        self.sent.append((channel, data))

    async def receive(self) -> tuple[int, bytes] | None:
        await asyncio.sleep(0.01)  # let the upstream copy run first
        return self.frames.pop(0) if self.frames else None

    async def close(self) -> None:
        self.closed = True


class IO:
    def __init__(self, result: Stream | Exception) -> None:
        self.result = result
        self.opened: list[tuple[Sequence[str], bool, bool]] = []

    async def open_exec(self, namespace: str, pod: str, container: str,
                        command: Sequence[str], *, tty: bool, stdin: bool) -> Stream:
        self.opened.append((command, tty, stdin))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class Client:
    """The caller's side: frames it sends, and what it receives."""

    def __init__(self, frames: list[tuple[int, bytes]] = ()) -> None:  # type: ignore[assignment]
        self.frames, self.got, self.status = list(frames), [], None

    async def send(self, channel: int, data: bytes) -> None:
        self.got.append((channel, data))

    async def send_status(self, status: Mapping[str, Any]) -> None:
        self.status = dict(status)

    async def incoming(self) -> AsyncIterator[tuple[int, bytes]]:
        for frame in self.frames:
            yield frame
        await asyncio.sleep(3600)  # the caller stays connected


REQ = ex.ExecRequest(command=("ls",), stdin=False, stdout=True, stderr=True, tty=False)
STATUS_2 = json.dumps(ex.exit_status(["false"], 2)).encode()


async def test_bridge_copies_both_ways_and_passes_the_exit_status_on() -> None:
    stream = Stream([(1, b"out"), (2, b"err"), (3, STATUS_2)])
    client = Client([(0, b"typed"), (4, b'{"Width":80,"Height":24}'), (255, b"\x00")])
    req = ex.ExecRequest(("sh",), stdin=True, stdout=True, stderr=True, tty=True)
    assert await ex.bridge(client, IO(stream), "ns", "p", "c", req) == "Failure"
    assert client.got == [(1, b"out"), (2, b"err")]
    assert client.status is not None and client.status["details"]["causes"][0] == {
        "reason": "ExitCode", "message": "2"}
    assert stream.sent == [(0, b"typed"), (4, b'{"Width":80,"Height":24}'), (255, b"\x00")]
    assert stream.closed


async def test_bridge_drops_unrequested_streams_and_stdin() -> None:
    stream = Stream([(1, b"out"), (2, b"err"), (3, b'{"metadata":{},"status":"Success"}')])
    client = Client([(0, b"ignored")])
    req = ex.ExecRequest(("ls",), stdin=False, stdout=True, stderr=False, tty=False)
    assert await ex.bridge(client, IO(stream), "ns", "p", "c", req) == "Success"
    assert client.got == [(1, b"out")] and stream.sent == []


async def test_bridge_failures_are_statuses() -> None:
    client = Client()
    io = IO(Stream([]))
    await ex.bridge(client, io, "ns", "p", "c", ex.ExecRequest((), False, True, True, False))
    assert client.status is not None and client.status["code"] == 400
    assert io.opened == []  # refused before any cloud call

    await ex.bridge(client, IO(NotFound("ContainerGroup.NotFound", "gone")), "ns", "p", "c",
                    REQ)
    assert client.status["code"] == 404 and "ns/p" in client.status["message"]
    await ex.bridge(client, IO(Retryable("ServiceUnavailable", "busy")), "ns", "p", "c", REQ)
    assert client.status["code"] == 500 and "ServiceUnavailable" in client.status["message"]
    # A stream that ends without a status is a failure, never a silent success.
    await ex.bridge(client, IO(Stream([(1, b"x")])), "ns", "p", "c", REQ)
    assert client.status["status"] == "Failure" and "without an exit status" in \
        client.status["message"]


class Endless(Stream):
    """A command that prints every ``every`` seconds (None: never) and never ends."""

    def __init__(self, every: float | None) -> None:
        super().__init__([])
        self.every = every

    async def receive(self) -> tuple[int, bytes] | None:
        await asyncio.sleep(self.every if self.every is not None else 3600)
        return (1, b".")


async def test_idle_and_too_long_sessions_end_with_a_status() -> None:
    loop = asyncio.get_running_loop()
    client, started = Client(), loop.time()
    timeouts = ex.ExecTimeouts(idle=0.3, max_duration=0.0)
    assert await ex.bridge(client, IO(Endless(None)), "ns", "p", "c", REQ, timeouts) == \
        "Failure"
    assert 0.3 <= loop.time() - started < 1.0
    assert client.status is not None and "moved no data for 0.3 s" in client.status["message"]
    # Output every 0.1 s keeps it from idling; the maximum length still ends it.
    client, started = Client(), loop.time()
    timeouts = ex.ExecTimeouts(idle=0.3, max_duration=0.8)
    await ex.bridge(client, IO(Endless(0.1)), "ns", "p", "c", REQ, timeouts)
    assert 0.8 <= loop.time() - started < 1.5 and len(client.got) >= 6
    assert client.status is not None and "maximum length of 0.8 s" in client.status["message"]
    assert ex.ExecTimeouts(0, 0).deadline(1.0, 2.0) is None
