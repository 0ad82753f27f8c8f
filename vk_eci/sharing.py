"""Reads shared by concurrent callers: a bounded expiring cache and one read in flight per key.

Used by the kubelet API's token and access reviews and by the pod resources the node reads
from the API server; one home so that both get the same cancellation rule.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    """A small LRU whose entries expire; sizes bounded so a flood of keys cannot grow it."""

    def __init__(self, max_size: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._max = max_size
        self._clock = clock

    def get(self, key: str) -> T | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, value = hit
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def put(self, key: str, value: T, ttl: float) -> None:
        self._data[key] = (self._clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)


async def single_flight(inflight: dict[str, asyncio.Task[T]], key: str,
                        make: Callable[[], Awaitable[T]], *, name: str) -> T:
    """One read per key at a time: concurrent callers share its answer.

    The read runs in its own task, which no caller owns: a caller that goes away (cancelled)
    stops waiting, but the read goes on for the others.
    """
    task = inflight.get(key)
    if task is None:
        async def run() -> T:
            return await make()

        task = asyncio.create_task(run(), name=name)
        inflight[key] = task

        def done(t: asyncio.Task[T]) -> None:
            if inflight.get(key) is t:
                del inflight[key]
            if not t.cancelled():
                t.exception()  # retrieved: every waiter re-raises it itself

        task.add_done_callback(done)
    return await asyncio.shield(task)
