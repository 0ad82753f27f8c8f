"""The advisor's planner: bounds, user caches, savings under the ranking, greedy vs optimum."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from matcher import CacheIndex, normalize_image
from vk_eci.advisor.candidates import Candidate, candidates, demands
from vk_eci.advisor.model import (
    Action,
    Budget,
    ExistingCache,
    ImageSetDemand,
    Plan,
)
from vk_eci.advisor.planner import plan
from vk_eci.advisor.savings import Supply

NOW = 1_800_000_000.0
POOL = [f"reg.example.com/team/img{i}:v1" for i in range(7)]
BOUND = (1 - 1 / math.e) / 2


def _demand(images: list[str], pods: float, pull: float = 30.0, gib: float = 0.4,
            workloads: tuple[str, ...] = ()) -> ImageSetDemand:
    return ImageSetDemand(tuple(images), pods=pods, window_hours=1.0,
                          pull_seconds={i: pull for i in images},
                          image_gib={i: gib for i in images}, workloads=workloads)


@st.composite
def demand_sets(draw: st.DrawFn, max_sets: int = 6) -> list[ImageSetDemand]:
    n = draw(st.integers(1, max_sets))
    out = []
    for k in range(n):
        imgs = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=5, unique=True))
        pods = draw(st.integers(1, 40))
        pull = {i: float(draw(st.integers(0, 90))) for i in imgs}
        gib = {i: draw(st.sampled_from([0.1, 0.5, 2.0, 6.0])) for i in imgs}
        out.append(ImageSetDemand(tuple(imgs), pods=pods, window_hours=2.0, pull_seconds=pull,
                                  image_gib=gib, workloads=(f"ns/Deployment/w{k}",)))
    return out


@st.composite
def existing_caches(draw: st.DrawFn) -> list[ExistingCache]:
    out = []
    for k in range(draw(st.integers(0, 3))):
        imgs = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True))
        owned = draw(st.booleans())
        name = f"advisor-old-{k}" if owned else f"user-{k}"
        out.append(ExistingCache(name, tuple(imgs), draw(st.sampled_from([20, 40])),
                                 NOW - draw(st.integers(0, 10_000)), owned))
    return out


budgets = st.builds(
    Budget,
    max_caches=st.integers(0, 4),
    max_gib=st.sampled_from([0, 20, 45, 80, 200]),
    cost_per_gib_day=st.sampled_from([0.0, 1.0, 30.0, 300.0]),
    max_images=st.integers(1, 6),
    min_cache_gib=st.just(20),
    max_cache_gib=st.sampled_from([20, 60, 32768]),
)


def _active(p: Plan) -> list:  # type: ignore[type-arg]
    return [c for c in p.caches if c.action is not Action.RETIRE]


@given(demand_sets(), existing_caches(), budgets)
def test_plan_respects_every_bound(ds: list[ImageSetDemand], ex: list[ExistingCache],
                                   b: Budget) -> None:
    p = plan(ds, ex, b, now=NOW)
    active = _active(p)
    assert len(active) <= b.max_caches
    assert sum(c.size_gib for c in active) <= b.max_gib
    for c in active:
        if c.action is not Action.KEEP:  # kept caches are what they already are
            assert 1 <= len(c.images) <= b.max_images
            assert b.min_cache_gib <= c.size_gib <= b.max_cache_gib
        assert c.cost_per_day == c.size_gib * b.cost_per_gib_day
    assert len({c.name for c in p.caches}) == len(p.caches)


@given(demand_sets(), existing_caches(), budgets)
def test_user_caches_are_never_planned_and_owned_ones_always_accounted(
        ds: list[ImageSetDemand], ex: list[ExistingCache], b: Budget) -> None:
    p = plan(ds, ex, b, now=NOW)
    names = [c.name for c in p.caches]
    assert not {c.name for c in ex if not c.advisor_owned} & set(names)
    for c in ex:
        if c.advisor_owned:
            assert names.count(c.name) == 1  # kept, updated or retired: never forgotten
    for c in p.caches:
        if c.action is Action.CREATE:
            assert c.name.startswith("advisor-") and c.name not in {e.name for e in ex}


@given(demand_sets(), existing_caches(), budgets)
def test_plan_is_deterministic_and_ignores_input_order(
        ds: list[ImageSetDemand], ex: list[ExistingCache], b: Budget) -> None:
    assert plan(ds, ex, b, now=NOW) == plan(ds[::-1], ex[::-1], b, now=NOW)


def _independent_savings(p: Plan, ds: list[ImageSetDemand], ex: list[ExistingCache],
                         b: Budget) -> dict[str, float]:
    """What each planned cache saves, recomputed from scratch with CacheIndex."""
    idx = CacheIndex()
    held = {}
    for c in ex:
        if not c.advisor_owned:
            idx.upsert(c.name, c.images, size_gib=c.size_gib, created_at=c.created_at)
            held[c.name] = {normalize_image(i) for i in c.images}
    for c in _active(p):
        created = next((e.created_at for e in ex if e.name == c.name), NOW) \
            if c.action is Action.KEEP else NOW
        idx.upsert(c.name, c.images, size_gib=c.size_gib, created_at=created)
        held[c.name] = set(c.images)
    out: dict[str, float] = {}
    for d in demands(ds, b):
        m = idx.best(d.images, now=NOW)
        if m is not None:
            saved = d.per_day * (sum(d.pull_s[i] for i in held[m.cache_id] & d.images)
                                 - b.hit_overhead_seconds)
            out[m.cache_id] = out.get(m.cache_id, 0.0) + saved
    return out


@given(demand_sets(), existing_caches(), budgets)
def test_savings_are_those_of_the_cache_each_set_really_picks(
        ds: list[ImageSetDemand], ex: list[ExistingCache], b: Budget) -> None:
    p = plan(ds, ex, b, now=NOW)
    recomputed = _independent_savings(p, ds, ex, b)
    for c in _active(p):
        assert math.isclose(c.saved_seconds_per_day, recomputed.get(c.name, 0.0), abs_tol=1e-6)


def test_a_partial_match_saves_only_the_matched_images() -> None:
    ds = [ImageSetDemand(("a:1", "b:1"), pods=24, window_hours=24,
                         pull_seconds={"a:1": 40.0, "b:1": 10.0})]
    ex = [ExistingCache("user-a", ("a:1",), 20, NOW - 5, advisor_owned=False)]
    b = Budget(max_caches=0)
    s = Supply(demands(ds), ex, b, NOW)
    assert s.saved == [24 * (40.0 - b.hit_overhead_seconds)]
    assert plan(ds, ex, b, now=NOW).caches == ()


def test_a_smaller_cache_with_equal_overlap_steals_pods_and_is_not_chosen() -> None:
    # Equal overlap -> smaller wins, even when it saves less. The big pull is held by
    # a 40 GiB user cache; a 20 GiB cache of the small image would take the pods and lose time.
    ds = [ImageSetDemand(("big:1", "small:1"), pods=240, window_hours=24,
                         pull_seconds={"big:1": 100.0, "small:1": 5.0},
                         image_gib={"big:1": 0.1, "small:1": 0.1})]
    ex = [ExistingCache("user-big", ("big:1",), 40, NOW - 5, advisor_owned=False)]
    s = Supply(demands(ds), ex, Budget(), NOW)
    small = Candidate("advisor-small", frozenset({"docker.io/library/small:1"}), 20, NOW)
    assert s.gain(small) < 0
    p = plan(ds, ex, Budget(cost_per_gib_day=0.0), now=NOW)
    assert [set(c.images) for c in p.caches] == [
        {"docker.io/library/big:1", "docker.io/library/small:1"}]


def test_a_ci_family_with_tag_bumps_shares_one_cache_of_its_common_images() -> None:
    base = ["ci/base:1", "ci/tools:3", "ci/node:18"]
    ds = [_demand([*base, f"ci/app:{v}"], pods=6, workloads=(f"ci/Job/build-{v}",))
          for v in range(8)]
    p = plan(ds, [], Budget(max_caches=1, cost_per_gib_day=10.0, max_images=6), now=NOW)
    [c] = p.caches
    assert c.action is Action.CREATE
    assert {normalize_image(i) for i in base} <= set(c.images)
    assert len(c.workloads) == 8  # every runner of the family benefits


def test_unearning_advisor_cache_is_retired_similar_one_updated_user_one_untouched() -> None:
    ds = [_demand(["web:2", "sidecar:1", "init:1"], pods=50)]
    ex = [
        ExistingCache("advisor-web", ("web:1", "sidecar:1", "init:1"), 20, NOW - 99, True),
        ExistingCache("advisor-gone", ("legacy:1",), 20, NOW - 99, True),
        ExistingCache("team-cache", ("legacy:1",), 20, NOW - 99, False),
    ]
    p = plan(ds, ex, Budget(cost_per_gib_day=1.0), now=NOW)
    by_name = {c.name: c for c in p.caches}
    assert by_name["advisor-web"].action is Action.UPDATE
    assert "docker.io/library/web:2" in by_name["advisor-web"].images
    assert by_name["advisor-gone"].action is Action.RETIRE
    assert "team-cache" not in by_name


def test_sets_too_small_for_a_cache_of_their_own_share_one() -> None:
    # Each set alone saves 10 pods/h x 24 x 48 s = 11,520 s/day, less than one 20 GiB cache's
    # cost (20 x 700 = 14,000); one cache holding both serves both for the same cost.
    ds = [_demand(["web:1", "sidecar:1"], pods=10, pull=25.0),
          _demand(["worker:1", "tools:1"], pods=10, pull=25.0)]
    b = Budget(cost_per_gib_day=700.0)
    assert all(Supply(demands(ds), [], b, NOW).gain(c) < 0
               for c in candidates(demands(ds), [], b, NOW))
    [c] = plan(ds, [], b, now=NOW).caches
    assert (c.action, c.size_gib, len(c.images)) == (Action.CREATE, 20, 4)
    assert math.isclose(c.saved_seconds_per_day, 2 * 240 * 48.0)


def test_an_earning_advisor_cache_is_kept_not_rebuilt() -> None:
    imgs = ["docker.io/library/web:2", "docker.io/library/sidecar:1"]
    ds = [_demand(imgs, pods=50)]
    ex = [ExistingCache("advisor-web", tuple(imgs), 20, NOW - 99, True)]
    [c] = plan(ds, ex, Budget(), now=NOW).caches
    assert (c.name, c.action) == ("advisor-web", Action.KEEP)
    assert c.saved_seconds_per_day > 0


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(5, 90)), min_size=1, max_size=5),
       st.integers(1, 30))
def test_more_demand_never_reduces_savings_for_disjoint_sets(
        sets: list[tuple[int, int]], extra: int) -> None:
    # Disjoint image sets, a budget that does not bind: each set is its own problem.
    ds = [_demand([f"app{k}/img{j}:1" for j in range(3)], pods=pods, pull=pull)
          for k, (pods, pull) in enumerate(sets)]
    b = Budget(max_caches=10, max_gib=10_000, cost_per_gib_day=20.0)
    before = plan(ds, [], b, now=NOW).expected_saved_seconds_per_day
    more = [*ds[:-1], _demand(list(ds[-1].images), pods=ds[-1].pods + extra,
                              pull=sets[-1][1])]
    assert plan(more, [], b, now=NOW).expected_saved_seconds_per_day >= before - 1e-6
    added = [*ds, _demand(["other/img:1", "other/img:2"], pods=extra, pull=60.0)]
    assert plan(added, [], b, now=NOW).expected_saved_seconds_per_day >= before - 1e-6


def _value(ds: list[ImageSetDemand], ex: list[ExistingCache], b: Budget,
           chosen: list[Candidate]) -> float:
    s = Supply(demands(ds, b), [c for c in ex if not c.advisor_owned], b, NOW)
    for c in chosen:
        s.add(c)
    return s.value()


def _as_candidates(p: Plan, ex: list[ExistingCache]) -> list[Candidate]:
    created = {e.name: e.created_at for e in ex}
    return [Candidate(c.name, frozenset(c.images), c.size_gib,
                      created[c.name] if c.action is Action.KEEP else NOW) for c in _active(p)]


small_budgets = st.builds(
    Budget,
    max_caches=st.integers(0, 3),
    max_gib=st.sampled_from([0, 20, 45, 80]),
    cost_per_gib_day=st.sampled_from([0.0, 1.0, 30.0, 300.0]),
    max_images=st.integers(1, 6),
    max_cache_gib=st.sampled_from([20, 60, 32768]),
)


@given(demand_sets(max_sets=4), existing_caches(), small_budgets)
def test_plan_is_within_the_stated_bound_of_brute_force(
        ds: list[ImageSetDemand], ex: list[ExistingCache], b: Budget) -> None:
    pool = candidates(demands(ds, b), ex, b, NOW)
    baseline = _value(ds, ex, b, [])  # the user's caches alone
    best = baseline
    for k in range(1, b.max_caches + 1):
        for combo in itertools.combinations(pool, k):
            if sum(c.size_gib for c in combo) <= b.max_gib:
                best = max(best, _value(ds, ex, b, list(combo)))
    got = _value(ds, ex, b, _as_candidates(plan(ds, ex, b, now=NOW), ex))
    assert got >= baseline - 1e-6  # a plan never makes things worse than no plan
    assert got - baseline >= BOUND * (best - baseline) - 1e-6
