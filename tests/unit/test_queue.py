"""vk_eci.cluster.kube.queue: per-key serialisation, bounded concurrency, back-off, give-up."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable

import pytest

from vk_eci.cluster.kube.queue import Backoff, WorkQueue

FAST = Backoff(base=0.01, cap=0.05)


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


async def wait_until(cond: Callable[[], bool], within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


async def test_one_worker_per_key_and_coalescing() -> None:
    active: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    overlap = []

    async def handler(key: str) -> None:
        active[key] += 1
        if active[key] > 1:
            overlap.append(key)
        runs[key] += 1
        await asyncio.sleep(0.02)
        active[key] -= 1

    async def give_up(key: str, e: BaseException, n: int) -> None:
        raise AssertionError(key)

    q = WorkQueue(handler, lambda e: True, give_up, concurrency=4, backoff=FAST)
    for _ in range(10):
        q.enqueue("ns/a")
        await asyncio.sleep(0.001)
    await wait_until(lambda: len(q) == 0)
    assert overlap == []
    # Ten enqueues while busy coalesce into a few runs, and the last enqueue is honoured.
    assert 2 <= runs["ns/a"] <= 4
    await q.close()


async def test_bounded_concurrency() -> None:
    active = 0
    peak = 0

    async def handler(key: str) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1

    async def give_up(key: str, e: BaseException, n: int) -> None:
        pass

    q = WorkQueue(handler, lambda e: True, give_up, concurrency=3, backoff=FAST)
    for i in range(20):
        q.enqueue(f"ns/p{i}")
    assert q.running == 20  # a task per key, but ...
    await wait_until(lambda: len(q) == 0)
    assert peak == 3  # ... only three handlers at once
    assert q.running == 0  # idle workers exited
    await q.close()


async def test_retry_with_backoff_then_success() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def handler(key: str) -> None:
        calls.append(loop.time())
        if len(calls) < 4:
            raise Transient("try again")

    async def give_up(key: str, e: BaseException, n: int) -> None:
        raise AssertionError("gave up")

    q = WorkQueue(handler, lambda e: isinstance(e, Transient), give_up,
                  backoff=Backoff(base=0.02, cap=1.0, jitter=0.0))
    q.enqueue("ns/a")
    await wait_until(lambda: len(calls) == 4 and len(q) == 0)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.018 and gaps[1] >= 0.038 and gaps[2] >= 0.078  # doubling
    assert q.attempts("ns/a") == 0
    await q.close()


async def test_enqueue_during_backoff_does_not_cut_it_short() -> None:
    calls = 0

    async def handler(key: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Transient("x")

    async def give_up(key: str, e: BaseException, n: int) -> None:
        pass

    q = WorkQueue(handler, lambda e: True, give_up, backoff=Backoff(0.2, 0.2, 0.0))
    q.enqueue("k")
    await wait_until(lambda: calls == 1)
    for _ in range(5):
        q.enqueue("k")
    await asyncio.sleep(0.1)
    assert calls == 1
    await wait_until(lambda: calls == 2)
    await q.close()


async def test_permanent_error_gives_up_once() -> None:
    calls = 0
    gave_up: list[tuple[str, str, int]] = []

    async def handler(key: str) -> None:
        nonlocal calls
        calls += 1
        raise Fatal("bad spec")

    async def give_up(key: str, e: BaseException, n: int) -> None:
        gave_up.append((key, str(e), n))

    q = WorkQueue(handler, lambda e: isinstance(e, Transient), give_up, backoff=FAST)
    q.enqueue("ns/a")
    await wait_until(lambda: len(q) == 0)
    await asyncio.sleep(0.05)
    assert calls == 1
    assert gave_up == [("ns/a", "bad spec", 1)]
    await q.close()


async def test_retries_are_bounded() -> None:
    gave_up: list[int] = []

    async def handler(key: str) -> None:
        raise Transient("always")

    async def give_up(key: str, e: BaseException, n: int) -> None:
        gave_up.append(n)

    q = WorkQueue(handler, lambda e: True, give_up, max_retries=3, backoff=FAST)
    q.enqueue("k")
    await wait_until(lambda: gave_up != [])
    assert gave_up == [4]
    await q.close()


async def test_handler_asks_to_look_again_later() -> None:
    calls = 0

    async def handler(key: str) -> float | None:
        nonlocal calls
        calls += 1
        return 0.03 if calls < 3 else None

    async def give_up(key: str, e: BaseException, n: int) -> None:
        pass

    q = WorkQueue(handler, lambda e: True, give_up)
    q.enqueue("k")
    await wait_until(lambda: calls == 3 and len(q) == 0)
    await q.close()


async def test_forget_drops_pending_retry() -> None:
    calls = 0

    async def handler(key: str) -> None:
        nonlocal calls
        calls += 1
        raise Transient("x")

    async def give_up(key: str, e: BaseException, n: int) -> None:
        pass

    q = WorkQueue(handler, lambda e: True, give_up, backoff=Backoff(0.1, 0.1, 0.0))
    q.enqueue("k")
    await wait_until(lambda: calls == 1 and q.running == 0)
    q.forget("k")
    assert len(q) == 0
    await asyncio.sleep(0.15)
    assert calls == 1
    await q.close()


async def test_close_cancels_stuck_handlers() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(key: str) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def give_up(key: str, e: BaseException, n: int) -> None:
        pass

    q = WorkQueue(handler, lambda e: True, give_up)
    q.enqueue("k")
    await started.wait()
    await q.close(grace=0.05)
    assert cancelled.is_set()
    q.enqueue("k2")  # a closed queue accepts nothing
    assert len(q) == 0


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_bounds(attempt: int) -> None:
    b = Backoff(base=0.5, cap=60.0, jitter=0.5)
    for _ in range(50):
        d = b.delay(attempt)
        top = min(60.0, 0.5 * 2 ** (attempt - 1))
        assert top * 0.5 <= d <= top
    assert b.delay(1, hint=10.0) == 10.0
