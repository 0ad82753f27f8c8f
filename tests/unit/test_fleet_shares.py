"""vk_eci.cluster.fleet: the share rule (pure) and the account key, and the rate limiter's
shares (vk_eci.cloud.api.ratelimit): a fleet never grants more than the account's limit."""

from __future__ import annotations

import asyncio
import random

import pytest

from vk_eci.cloud.api.ratelimit import BURST, REFILL, RateLimiter, TokenBucket
from vk_eci.cluster.fleet.account import account_key, member_lease_name
from vk_eci.cluster.fleet.member import parse_counts, render_counts
from vk_eci.cluster.fleet.shares import STANDBY_WEIGHT, Seen, Weight, decide


def test_a_newcomer_spends_nothing_until_every_live_member_counts_it() -> None:
    old = Seen("a", frozenset({"a"}), alive=True)
    d = decide("b", [old], renewed=True, synced=True)
    assert d.share == 0.0 and d.view == {"a", "b"} and d.waiting_for == {"a"}
    counted = Seen("a", frozenset({"a", "b"}), alive=True)
    assert decide("b", [counted], renewed=True, synced=True).share == 0.5
    # Not renewed within the deadline, or not yet listed after its own Lease: nothing.
    assert decide("b", [counted], renewed=False, synced=True).share == 0.0
    assert decide("b", [counted], renewed=True, synced=False).share == 0.0


def test_a_dead_member_is_dropped_and_its_share_returns() -> None:
    dead = Seen("c", frozenset({"a", "b", "c"}), alive=False)
    live = Seen("b", frozenset({"a", "b", "c"}), alive=True)
    d = decide("a", [live, dead], renewed=True, synced=True)
    assert d.view == {"a", "b"} and d.share == 0.5


def test_account_key_names_the_account_without_the_key() -> None:
    key = account_key("cn-hangzhou", "ak:LTAI5tSecretishKeyId")
    assert key.startswith("cn-hangzhou.") and "LTAI" not in key and len(key) <= 63
    assert key == account_key("cn-hangzhou", "ak:LTAI5tSecretishKeyId")
    assert key != account_key("cn-beijing", "ak:LTAI5tSecretishKeyId")
    name = member_lease_name("vk-eci-7d9f_Pod.Name")
    assert name.startswith("vk-eci-fleet-vk-eci-7d9f-pod-name-") and len(name) <= 63


def _simulate(seed: int, members: int = 6, steps: int = 400, weights: bool = True) -> float:
    """Members join, die and are replaced, and change weight (a standby taking over, a leader
    deposed), while each sees the others' published Leases late (a snapshot of an earlier
    moment, never going back: an informer delivers in order, and lists only after its own Lease
    exists). Returns the largest sum of live shares seen."""
    rng = random.Random(seed)
    history: list[tuple[float, dict[str, Seen]]] = [(0.0, {})]
    created: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    shares: dict[str, float] = {}
    wanted: dict[str, Weight] = {}
    applied: dict[str, float] = {}
    dead_until: dict[str, float] = {}  # killed: its Lease stays until it expires
    worst = 0.0
    names = iter(f"m{i}" for i in range(10_000))
    t = 0.0
    for _ in range(steps):
        t += rng.uniform(0.01, 1.0)
        published = dict(history[-1][1])
        for who, until in list(dead_until.items()):
            if t >= until:
                published.pop(who, None)
                del dead_until[who]
        live = [m for m in shares if m in seen_at]
        if len(live) < members and rng.random() < 0.3:
            new = next(names)
            created[new], seen_at[new], shares[new], applied[new] = t, t, 0.0, 0.0
            wanted[new] = Weight(rng.choice([1.0, STANDBY_WEIGHT]) if weights else 1.0)
            published[new] = Seen(new, frozenset({new}), True, wanted[new], {})
            live.append(new)
        elif live and rng.random() < 0.1:
            victim = rng.choice(live)
            shares[victim] = 0.0  # SIGKILL: spends nothing from now on
            dead_until[victim] = t + 5.0
            del seen_at[victim]
            live.remove(victim)
        if weights and live and rng.random() < 0.2:  # a takeover or a deposition
            who = rng.choice(live)
            value = STANDBY_WEIGHT if wanted[who].value == 1.0 else 1.0
            wanted[who] = Weight(value, wanted[who].epoch + 1)
        history.append((t, published))
        for me in rng.sample(live, len(live)):
            at = rng.uniform(seen_at[me], t)
            seen_at[me] = at
            snapshot = next(p for when, p in reversed(history) if when <= at)
            d = decide(me, snapshot.values(), renewed=True, synced=at >= created[me],
                       wanted=wanted[me], applied=applied[me])
            shares[me], applied[me] = d.share, d.applied  # applied first ...
            published = dict(history[-1][1])
            if me in published:  # ... then published
                published[me] = Seen(me, d.view, True, d.wanted, d.counts)
            history.append((t, published))
            worst = max(worst, sum(shares.values()))
    return worst


@pytest.mark.parametrize("seed", range(40))
def test_shares_never_sum_over_one_while_members_join_die_and_change_weight(seed: int) -> None:
    assert _simulate(seed) <= 1.0 + 1e-9


def test_a_leader_with_a_standby_spends_nearly_the_whole_budget() -> None:
    leader, standby = Weight(1.0, 5), Weight(STANDBY_WEIGHT, 9)
    seen_standby = Seen("s", frozenset({"l", "s"}), True, standby, {"l": leader})
    d = decide("l", [seen_standby], renewed=True, synced=True, wanted=leader, applied=1.0)
    assert d.share >= 0.95 and d.counts == {"s": standby}
    seen_leader = Seen("l", frozenset({"l", "s"}), True, leader, {"s": standby})
    d = decide("s", [seen_leader], renewed=True, synced=True, wanted=standby,
               applied=STANDBY_WEIGHT)
    assert d.share <= 0.05


def test_a_raised_weight_waits_for_every_member_to_count_it_at_that_epoch() -> None:
    old, new = Weight(STANDBY_WEIGHT, 1), Weight(1.0, 2)
    stale = Seen("l", frozenset({"l", "s"}), True, Weight(1.0), {"s": Weight(1.0, 0)})
    d = decide("s", [stale], renewed=True, synced=True, wanted=new, applied=old.value)
    # Counted at 1 but of an older epoch: it may since have applied the lower weight.
    assert d.applied == STANDBY_WEIGHT and d.share == STANDBY_WEIGHT / (STANDBY_WEIGHT + 1)
    acked = Seen("l", frozenset({"l", "s"}), True, Weight(1.0), {"s": new})
    d = decide("s", [acked], renewed=True, synced=True, wanted=new, applied=old.value)
    assert d.applied == 1.0 and d.share == 0.5
    # Lowering applies at once, whatever the others count.
    lower = Weight(STANDBY_WEIGHT, 3)
    d = decide("s", [acked], renewed=True, synced=True, wanted=lower, applied=1.0)
    assert d.applied == STANDBY_WEIGHT


def test_an_older_member_without_weights_counts_everyone_at_one() -> None:
    older = Seen("o", frozenset({"o", "n"}), True)  # no weight, no counts published
    d = decide("n", [older], renewed=True, synced=True, wanted=Weight(1.0, 7), applied=0.0)
    assert d.share == 0.5
    assert Weight.parse(None) == Weight(1.0) and Weight.parse("0.5@3") == Weight(0.5, 3)
    assert parse_counts(None) is None
    assert parse_counts(render_counts({"a": Weight(0.25, 4)})) == {"a": Weight(0.25, 4)}


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def _grants(bucket: TokenBucket, clock: _Clock, until: float) -> list[float]:
    out = []
    while clock.now < until:
        await bucket.acquire()
        out.append(clock.now)
    return out


def _window_max(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 60.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_two_halves_stay_under_the_account_limit_across_a_share_change() -> None:
    """One member alone at share 1, a second joins (the first shrinks to 1/2 at once, the
    newcomer grows from empty): grants of both in any minute stay under 0.95 x the limit."""
    limit = 120.0
    clock = _Clock()
    first = TokenBucket(limit, clock=clock, sleep=clock.sleep)
    grants = await _grants(first, clock, clock.now + 45)
    first.set_share(0.5)
    second = TokenBucket(limit, clock=clock, sleep=clock.sleep)
    second.set_share(0.5)
    second.start_empty(0.0)
    end = clock.now + 120
    # Interleave the two: each takes its next token when the clock allows.
    while clock.now < end:
        for bucket in (first, second):
            await bucket.acquire()
            grants.append(clock.now)
    assert _window_max(grants) <= (REFILL + BURST) * limit


async def test_share_zero_grants_nothing_until_it_rises() -> None:
    limiter = RateLimiter({"CreateContainerGroup": 600})
    limiter.set_share(0.0)
    waiting = asyncio.create_task(limiter.acquire("CreateContainerGroup"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    limiter.set_share(1.0)
    await asyncio.wait_for(waiting, 2.0)


async def test_a_bucket_made_after_joining_starts_from_what_its_share_earned() -> None:
    clock = _Clock()
    limiter = RateLimiter({"CreateContainerGroup": 600}, clock=clock)
    limiter.set_share(0.0)
    limiter.set_share(0.5)
    clock.now += 1.0  # one second at half of 0.85 x 600 / 60 = 4.25 tokens
    bucket_task = asyncio.create_task(limiter.acquire("CreateContainerGroup"))
    await bucket_task
    bucket = limiter._buckets["CreateContainerGroup"]
    assert bucket.capacity == pytest.approx(BURST * 600 * 0.5)
    assert bucket._tokens == pytest.approx(REFILL * 600 * 0.5 / 60 - 1.0)


async def test_the_health_probe_is_not_held_by_a_share_of_zero() -> None:
    """A process waiting to be counted still asks ECI whether it answers (its Node's Ready)."""
    limiter = RateLimiter()
    limiter.set_share(0.0)
    await asyncio.wait_for(limiter.acquire("DescribeRegions"), 1.0)
    waiting = asyncio.create_task(limiter.acquire("DescribeContainerGroups"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()
