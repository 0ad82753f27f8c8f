"""A per-key work queue: one worker per key at a time, bounded overall, idle workers exit.

Modelled on kopf's ``queueing.py`` and client-go's rate-limited workqueue. A key (a pod's
``namespace/name``) that is enqueued while its worker runs is worked once more after it, never
twice at once; events arriving during a back-off do not cut the back-off short, because the
handler always reads the newest state of its object when it finally runs. The handler's outcome
is a value: ``None`` (done) or a delay after which to look again; an exception is retried with
exponential back-off and jitter when ``should_retry`` says so, otherwise reported and dropped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vk_eci.log import pods_logger

Handler = Callable[[str], Awaitable[float | None]]
GiveUp = Callable[[str, BaseException, int], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter: ``base * 2**(n-1)`` capped at ``cap``, times 0.5-1."""

    base: float = 0.5
    cap: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, hint: float | None = None) -> float:
        raw = min(self.cap, self.base * (2.0 ** max(0, attempt - 1)))
        raw *= 1.0 - self.jitter * random.random()
        # A server-sent Retry-After is a floor, not a suggestion.
        return max(raw, float(hint or 0.0))


@dataclass
class _Key:
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    due: float = 0.0
    attempts: int = 0


@dataclass
class WorkQueue:
    """Serialises work per key; at most ``concurrency`` handlers run at once."""

    handler: Handler
    should_retry: Callable[[BaseException], bool]
    on_give_up: GiveUp
    concurrency: int = 32
    max_retries: int = 15
    backoff: Backoff = field(default_factory=Backoff)
    name: str = "pods"
    _keys: dict[str, _Key] = field(default_factory=dict, init=False)
    _sem: asyncio.Semaphore = field(init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(self.concurrency)

    def __len__(self) -> int:
        """Keys with work pending, running or waiting out a back-off."""
        return len(self._keys)

    @property
    def running(self) -> int:
        return sum(1 for k in self._keys.values() if k.task is not None)

    def attempts(self, key: str) -> int:
        state = self._keys.get(key)
        return state.attempts if state else 0

    def enqueue(self, key: str) -> None:
        """Work ``key`` as soon as possible, unless it is waiting out a back-off."""
        if self._closed:
            return
        state = self._keys.setdefault(key, _Key())
        if state.timer is not None:
            return
        state.dirty = True
        if state.task is None:
            state.task = asyncio.create_task(self._work(key, state), name=f"{self.name}:{key}")

    def enqueue_after(self, key: str, delay: float) -> None:
        """Work ``key`` after ``delay`` seconds (or earlier if already due earlier)."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        state = self._keys.setdefault(key, _Key())
        due = loop.time() + max(0.0, delay)
        if state.timer is not None:
            if state.due <= due:
                return
            state.timer.cancel()
        state.due = due
        state.timer = loop.call_at(due, self._fire, key)

    def forget(self, key: str) -> None:
        """Drop pending work and back-off for ``key`` (its object is gone)."""
        state = self._keys.get(key)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        state.dirty = False
        state.attempts = 0
        if state.task is None:
            del self._keys[key]

    def _fire(self, key: str) -> None:
        state = self._keys.get(key)
        if state is None or self._closed:
            return
        state.timer = None
        self.enqueue(key)

    async def _work(self, key: str, state: _Key) -> None:
        try:
            while state.dirty and not self._closed:
                state.dirty = False
                async with self._sem:
                    await self._run_once(key, state)
        finally:
            # No await since the loop test: nothing can have been enqueued in between.
            state.task = None
            if state.timer is None and self._keys.get(key) is state:
                del self._keys[key]

    async def _run_once(self, key: str, state: _Key) -> None:
        try:
            again = await self.handler(key)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            state.attempts += 1
            if self.should_retry(e) and state.attempts <= self.max_retries:
                delay = self.backoff.delay(state.attempts, getattr(e, "retry_after", None))
                pods_logger.info("retrying %s in %.2fs (attempt %d): %s", key, delay,
                                 state.attempts, e, extra={"pod": key})
                state.dirty = False
                self.enqueue_after(key, delay)
                return
            attempts, state.attempts = state.attempts, 0
            try:
                await self.on_give_up(key, e, attempts)
            except Exception:
                pods_logger.exception("reporting the failure of %s failed", key,
                                      extra={"pod": key})
            return
        state.attempts = 0
        if again is not None:
            self.enqueue_after(key, again)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting work, let running handlers finish for ``grace`` seconds, then cancel."""
        self._closed = True
        tasks = []
        for state in self._keys.values():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            if state.task is not None:
                tasks.append(state.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._keys.clear()
