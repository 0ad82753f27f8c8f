"""vk_eci.kubelet.logs: query validation, stamps, and the follow loop's de-duplication."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from vk_eci.kubelet import logs
from vk_eci.provider import ExecStream, LogOptions, PodUsage, RunningPod


def test_parse_query_maps_every_kubelet_option() -> None:
    options, follow = logs.parse_query({
        "tailLines": "10", "sinceTime": "2024-01-01T00:00:05.123456789Z", "timestamps": "true",
        "limitBytes": "100", "previous": "1", "follow": "false"})
    assert options == LogOptions(
        tail_lines=10, since_time=dt.datetime(2024, 1, 1, 0, 0, 5, 123456, tzinfo=dt.UTC),
        timestamps=True, limit_bytes=100, previous=True)
    assert follow is False
    assert logs.parse_query({}) == (LogOptions(), False)
    assert logs.parse_query({"sinceSeconds": "30", "follow": "true"}) == (
        LogOptions(since_seconds=30), True)


@pytest.mark.parametrize("query, word", [
    ({"tailLines": "-1"}, "tailLines"), ({"tailLines": "x"}, "tailLines"),
    ({"sinceSeconds": "0"}, "sinceSeconds"), ({"limitBytes": "0"}, "limitBytes"),
    ({"timestamps": "yes"}, "timestamps"), ({"sinceTime": "yesterday"}, "sinceTime"),
    ({"sinceSeconds": "5", "sinceTime": "2024-01-01T00:00:00Z"}, "sinceTime"),
    ({"follow": "true", "previous": "true"}, "previous"),
])
def test_parse_query_refuses_bad_values_naming_them(query: dict[str, str], word: str) -> None:
    with pytest.raises(logs.BadQuery, match=word):
        logs.parse_query(query)


def test_split_stamp() -> None:
    when, text = logs.split_stamp("2024-01-01T00:00:05+02:00 hello world")
    assert when == dt.datetime(2024, 1, 1, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert text == "hello world"
    assert logs.split_stamp("no stamp here") == (None, "no stamp here")


def test_cursor_drops_lines_already_sent_in_the_same_second() -> None:
    cursor = logs.FollowCursor()
    first = "2024-01-01T00:00:05Z a\n2024-01-01T00:00:05Z b\n"
    assert [b for _, b in cursor.fresh(first)] == ["a", "b"]
    # The next poll starts at the same second: a and b come again, c is new.
    again = first + "2024-01-01T00:00:05Z c\n2024-01-01T00:00:06Z d\n"
    assert [b for _, b in cursor.fresh(again)] == ["c", "d"]
    assert cursor.fresh("2024-01-01T00:00:06Z d\n") == []
    # An identical line printed twice in one second is two lines, not a repeat.
    assert [b for _, b in cursor.fresh("2024-01-01T00:00:06Z d\n" * 2)] == ["d"]


class ScriptedIO:
    """Answers each poll from a script of (state, log text with stamps)."""

    def __init__(self, script: list[tuple[str | None, str]]) -> None:
        self.script = script
        self.queries: list[LogOptions] = []
        self.polls = 0

    async def container_logs(self, namespace: str, pod: str, container: str,
                             options: LogOptions) -> str:
        self.queries.append(options)
        text = self.script[min(self.polls, len(self.script) - 1)][1]
        self.polls += 1
        return text

    async def container_state(self, namespace: str, pod: str, container: str) -> str | None:
        return self.script[min(self.polls, len(self.script) - 1)][0]

    async def open_exec(self, namespace: str, pod: str, container: str,
                        command: Sequence[str], *, tty: bool, stdin: bool) -> ExecStream:
        raise NotImplementedError

    async def running_pods(self) -> list[RunningPod]:
        return []

    async def pod_usage(self) -> list[PodUsage]:
        return []


T5, T6 = "2024-01-01T00:00:05.5Z", "2024-01-01T00:00:06Z"


async def follow(io: ScriptedIO, options: LogOptions) -> bytes:
    out = bytearray()

    async def write(chunk: bytes) -> None:
        out.extend(chunk)

    await logs.follow(io, "ns", "p", "c", options, write, interval=0)
    return bytes(out)


async def test_follow_streams_each_line_once_until_the_container_terminates() -> None:
    io = ScriptedIO([
        ("Running", f"{T5} a\n"),
        ("Running", f"{T5} a\n{T5} b\n"),
        ("Terminated", f"{T5} a\n{T5} b\n{T6} c\n"),
    ])
    assert await follow(io, LogOptions(tail_lines=5)) == b"a\nb\nc\n"
    first, second, third = io.queries
    assert first.timestamps and first.tail_lines == 5 and first.limit_bytes is None
    # Later polls ask from the cursor's whole second, without the tail.
    assert second.tail_lines is None
    assert second.since_time == dt.datetime(2024, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    assert third.since_time == dt.datetime(2024, 1, 1, 0, 0, 5, tzinfo=dt.UTC)


async def test_follow_keeps_stamps_when_asked_and_stops_at_limit_bytes() -> None:
    io = ScriptedIO([("Running", f"{T5} first\n"), ("Running", f"{T5} first\n{T6} second\n")])
    out = await follow(io, LogOptions(timestamps=True, limit_bytes=len(T5) + 10))
    assert out == f"{T5} first\n{T6}"[: len(T5) + 10].encode()
    assert io.polls == 2


async def test_follow_with_tail_zero_shows_only_new_lines() -> None:
    io = ScriptedIO([("Running", f"{T5} old\n"),
                     ("Terminated", f"{T5} old\n{T6} new\n")])
    assert await follow(io, LogOptions(tail_lines=0)) == b"new\n"
    assert io.queries[0].tail_lines == 1


async def test_follow_ends_when_the_pod_is_gone() -> None:
    io = ScriptedIO([(None, "")])
    assert await follow(io, LogOptions()) == b""
    assert io.polls == 1
