"""CacheIndex ranking, candidate rules, updates, and a property test against a plain matcher."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher import CacheIndex, InvalidReference, Match, normalize_image

NOW = 1_700_000_000.0


def make(*caches: tuple[str, list[str], int, float]) -> CacheIndex:
    idx = CacheIndex()
    for cache_id, images, size, created in caches:
        idx.upsert(cache_id, images, size_gib=size, created_at=created)
    return idx


def ids(matches: list[Match]) -> list[str]:
    return [m.cache_id for m in matches]


# ---- each ranking rule on its own ------------------------------------------------------------


def test_more_images_matched_wins_over_smaller_and_newer() -> None:
    idx = make(
        ("imc-one", ["nginx"], 20, NOW),
        ("imc-two", ["nginx", "redis"], 100, NOW - 1000),
    )
    best = idx.best(["nginx", "redis"], now=NOW)
    assert best is not None
    assert (best.cache_id, best.matched, best.total, best.missing) == ("imc-two", 2, 2, ())


def test_smaller_wins_when_overlap_is_equal() -> None:
    idx = make(("imc-big", ["nginx"], 40, NOW), ("imc-small", ["nginx"], 20, NOW - 1000))
    assert ids(idx.rank(["nginx"], now=NOW)) == ["imc-small", "imc-big"]


def test_newer_wins_when_overlap_and_size_are_equal() -> None:
    idx = make(("imc-old", ["nginx"], 20, NOW - 50), ("imc-new", ["nginx"], 20, NOW - 10))
    assert ids(idx.rank(["nginx"], now=NOW)) == ["imc-new", "imc-old"]


def test_cache_id_breaks_exact_ties_ascending() -> None:
    idx = make(*[(f"imc-{c}", ["nginx"], 20, NOW - 1) for c in "dbeac"])
    assert ids(idx.rank(["nginx"], now=NOW)) == [f"imc-{c}" for c in "abcde"]
    best = idx.best(["nginx"], now=NOW)
    assert best is not None and best.cache_id == "imc-a"


@pytest.mark.parametrize("tuning", [(1024, 64), (0, 1), (0, 2)])
def test_ties_beyond_a_chunk_are_still_broken_by_id(tuning: tuple[int, int]) -> None:
    idx = CacheIndex(small_budget=tuning[0], first_chunk=tuning[1])
    for c in "edcba":  # the smallest id is added last, so it is read last
        idx.upsert(f"imc-{c}", ["nginx", "redis"], size_gib=20, created_at=NOW - 1)
    idx.upsert("imc-0", ["nginx"], size_gib=20, created_at=NOW - 1)
    best = idx.best(["nginx", "redis"], now=NOW)
    assert best is not None and best.cache_id == "imc-a"
    best = idx.best(["nginx"], now=NOW)
    assert best is not None and best.cache_id == "imc-0"


def test_rank_limit_keeps_ties_in_id_order_across_the_cut() -> None:
    caches = [(f"imc-{i:02d}", ["nginx"], 20, NOW - 1) for i in range(30, 0, -1)]
    idx = make(*caches, ("imc-best", ["nginx"], 10, NOW - 1))
    assert ids(idx.rank(["nginx"], limit=3, now=NOW)) == ["imc-best", "imc-01", "imc-02"]
    assert idx.rank(["nginx"], limit=0, now=NOW) == []


def test_missing_lists_normalised_images_in_pod_order() -> None:
    idx = make(("imc-a", ["redis:7"], 20, NOW))
    best = idx.best(["busybox", "redis:7", "nginx"], now=NOW)
    assert best is not None
    assert best.missing == ("docker.io/library/busybox:latest", "docker.io/library/nginx:latest")
    assert (best.matched, best.total, best.complete) == (1, 3, False)


# ---- candidates --------------------------------------------------------------------------


def test_not_ready_caches_are_not_candidates_until_ready() -> None:
    idx = CacheIndex()
    idx.upsert("imc-a", ["nginx"], size_gib=20, created_at=NOW, ready=False)
    assert idx.best(["nginx"], now=NOW) is None
    idx.upsert("imc-a", ["nginx"], size_gib=20, created_at=NOW, ready=True)
    best = idx.best(["nginx"], now=NOW)
    assert best is not None and best.cache_id == "imc-a"


def test_expiry_boundary_is_exclusive() -> None:
    idx = CacheIndex()
    idx.upsert("imc-a", ["nginx"], size_gib=20, created_at=NOW - 100, expires_at=NOW)
    assert idx.best(["nginx"], now=NOW - 0.001) is not None
    assert idx.best(["nginx"], now=NOW) is None
    assert idx.best(["nginx"], now=NOW + 1) is None


def test_expired_best_falls_back_to_next() -> None:
    idx = CacheIndex()
    idx.upsert("imc-small", ["nginx"], size_gib=20, created_at=NOW - 9, expires_at=NOW)
    idx.upsert("imc-large", ["nginx"], size_gib=30, created_at=NOW - 9)
    best = idx.best(["nginx"], now=NOW + 5)
    assert best is not None and best.cache_id == "imc-large"


def test_now_defaults_to_the_clock() -> None:
    idx = CacheIndex()
    idx.upsert("imc-past", ["nginx"], size_gib=20, created_at=0, expires_at=1.0)
    idx.upsert("imc-future", ["nginx"], size_gib=30, created_at=0, expires_at=4_000_000_000.0)
    best = idx.best(["nginx"])
    assert best is not None and best.cache_id == "imc-future"


def test_min_matched_filters_partial_caches() -> None:
    idx = make(("imc-1", ["a"], 20, NOW), ("imc-2", ["a", "b"], 20, NOW))
    pod = ["a", "b", "c"]
    assert ids(idx.rank(pod, min_matched=2, now=NOW)) == ["imc-2"]
    assert idx.best(pod, min_matched=3, now=NOW) is None
    assert idx.best(pod, min_matched=4, now=NOW) is None


def test_require_all_needs_every_image() -> None:
    idx = make(("imc-2", ["a", "b"], 20, NOW), ("imc-3", ["a", "b", "c", "d"], 80, NOW))
    best = idx.best(["a", "b", "c"], require_all=True, now=NOW)
    assert best is not None and best.cache_id == "imc-3" and best.complete
    assert idx.best(["a", "b", "x"], require_all=True, now=NOW) is None


def test_require_all_wins_over_min_matched() -> None:
    idx = make(("imc-2", ["a", "b"], 20, NOW))
    assert idx.best(["a", "b", "c"], min_matched=1, require_all=True, now=NOW) is None


def test_bad_min_matched_and_limit_are_refused() -> None:
    idx = make(("imc-1", ["a"], 20, NOW))
    with pytest.raises(ValueError, match="min_matched"):
        idx.best(["a"], min_matched=0)
    with pytest.raises(ValueError, match="limit"):
        idx.rank(["a"], limit=-1)


def test_aliases_and_duplicates_count_once() -> None:
    idx = make(("imc-a", ["docker.io/library/nginx:latest", "redis"], 20, NOW))
    best = idx.best(
        ["nginx", "docker.io/nginx:latest", "index.docker.io/library/nginx", "nginx:latest"],
        now=NOW,
    )
    assert best is not None and (best.matched, best.total) == (1, 1)
    # and a cache listing aliases holds one image, not two
    idx.upsert(
        "imc-b", ["nginx", "index.docker.io/library/nginx:latest"], size_gib=10, created_at=NOW
    )
    best = idx.best(["nginx", "redis"], now=NOW)
    assert best is not None and (best.cache_id, best.matched) == ("imc-a", 2)


def test_acr_endpoint_variants_match() -> None:
    idx = make(("imc-a", ["registry-vpc.cn-hangzhou.aliyuncs.com/ns/app:1"], 20, NOW))
    best = idx.best(["registry.cn-hangzhou.aliyuncs.com/ns/app:1"], now=NOW)
    assert best is not None and best.cache_id == "imc-a"


def test_empty_pod_and_unknown_images_have_no_match() -> None:
    idx = make(("imc-a", ["nginx"], 20, NOW))
    assert idx.best([], now=NOW) is None
    assert idx.best(["redis"], now=NOW) is None
    assert CacheIndex().best(["nginx"], now=NOW) is None


def test_invalid_references_raise_everywhere() -> None:
    idx = make(("imc-a", ["nginx"], 20, NOW))
    with pytest.raises(InvalidReference, match="'Bad'"):
        idx.upsert("imc-b", ["Bad"], size_gib=20, created_at=NOW)
    assert "imc-b" not in idx
    for lookup in (idx.best, idx.rank):
        with pytest.raises(InvalidReference, match="'Bad'"):
            lookup(["nginx", "Bad"], now=NOW)
    with pytest.raises(InvalidReference):
        idx.best_many([["nginx"], ["Bad"]], now=NOW)


def test_bad_cache_fields_are_refused_by_name() -> None:
    idx = CacheIndex()
    with pytest.raises(ValueError, match=r"imc-a.*no images"):
        idx.upsert("imc-a", [], size_gib=20, created_at=NOW)
    with pytest.raises(ValueError, match=r"imc-a.*size_gib"):
        idx.upsert("imc-a", ["nginx"], size_gib=-1, created_at=NOW)
    with pytest.raises(ValueError, match=r"imc-a.*created_at"):
        idx.upsert("imc-a", ["nginx"], size_gib=20, created_at=float("nan"))
    with pytest.raises(TypeError, match="string"):
        idx.upsert("imc-a", "nginx", size_gib=20, created_at=NOW)
    assert len(idx) == 0


# ---- updates ---------------------------------------------------------------------------------


def test_upsert_replaces_images_size_and_time() -> None:
    idx = make(("imc-a", ["nginx"], 20, NOW), ("imc-b", ["nginx"], 30, NOW))
    idx.upsert("imc-a", ["redis"], size_gib=20, created_at=NOW)
    assert len(idx) == 2
    assert ids(idx.rank(["nginx"], now=NOW)) == ["imc-b"]
    assert ids(idx.rank(["redis"], now=NOW)) == ["imc-a"]
    idx.upsert("imc-a", ["nginx", "redis"], size_gib=90, created_at=NOW)
    assert ids(idx.rank(["nginx"], now=NOW)) == ["imc-b", "imc-a"]
    best = idx.best(["nginx", "redis"], now=NOW)
    assert best is not None and (best.cache_id, best.size_gib) == ("imc-a", 90)


def test_remove_then_re_add() -> None:
    idx = make(("imc-a", ["nginx"], 20, NOW), ("imc-b", ["nginx"], 30, NOW))
    assert idx.remove("imc-a") is True
    assert idx.remove("imc-a") is False
    assert "imc-a" not in idx and len(idx) == 1
    assert ids(idx.rank(["nginx"], now=NOW)) == ["imc-b"]
    idx.upsert("imc-a", ["nginx"], size_gib=20, created_at=NOW)
    assert ids(idx.rank(["nginx"], now=NOW)) == ["imc-a", "imc-b"]


def test_many_removals_compact_and_keep_answers() -> None:
    idx = CacheIndex()
    for i in range(10_000):
        idx.upsert(f"imc-{i:05d}", [f"img{i % 7}", "common"], size_gib=20 + i % 13, created_at=i)
    for i in range(0, 10_000):
        if i % 10:
            assert idx.remove(f"imc-{i:05d}")
    assert len(idx) == 1000
    ranked = idx.rank(["common"], limit=1000, now=NOW)
    assert sorted(ids(ranked)) == [f"imc-{i:05d}" for i in range(0, 10_000, 10)]
    assert [m.sort_key() for m in ranked] == sorted(m.sort_key() for m in ranked)
    best = idx.best(["img3", "common"], now=NOW)
    want = min((i for i in range(0, 10_000, 10) if i % 7 == 3), key=lambda i: (20 + i % 13, -i))
    assert best is not None and best.cache_id == f"imc-{want:05d}"


def test_explain_names_winner_missing_and_runner_up() -> None:
    idx = make(("imc-small", ["nginx"], 20, NOW), ("imc-big", ["nginx"], 40, NOW))
    text = idx.explain(["nginx", "redis"], now=NOW)
    assert "imc-small" in text and "1 of 2" in text and "docker.io/library/redis:latest" in text
    assert "runner-up imc-big" in text and "size" in text
    assert "no ready" in idx.explain(["busybox"], now=NOW)


def test_match_explain_names_the_deciding_rule() -> None:
    a = Match("imc-a", 2, 2, (), 20, NOW)
    assert "images matched" in a.explain(Match("imc-b", 1, 2, ("x",), 10, NOW))
    assert "creation time" in a.explain(Match("imc-b", 2, 2, (), 20, NOW - 1))
    assert "cache id" in a.explain(Match("imc-b", 2, 2, (), 20, NOW))
    assert a.explain().endswith("no runner-up")


# ---- property test against a plain-Python matcher -------------------------------------------


@dataclass
class PlainCache:
    images: frozenset[str]
    size: int
    created: float
    ready: bool
    expires: float | None


def plain_rank(
    caches: dict[str, PlainCache], pod: list[str], min_matched: int, require_all: bool, now: float
) -> list[Match]:
    names = list(dict.fromkeys(normalize_image(p) for p in pod))
    need = len(names) if require_all else min_matched
    out = []
    for cache_id, c in caches.items():
        if not c.ready or (c.expires is not None and c.expires <= now):
            continue
        held = [n for n in names if n in c.images]
        if not names or len(held) < need:
            continue
        missing = tuple(n for n in names if n not in c.images)
        out.append(Match(cache_id, len(held), len(names), missing, c.size, c.created))
    return sorted(out, key=Match.sort_key)


VOCAB = ["nginx", "redis:7", "busybox", "quay.io/a/b", "index.docker.io/library/nginx", "x/y:1"]
VOCAB += [f"img{i}" for i in range(10)]

_image_set = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=5)
_cache_id = st.sampled_from([f"imc-{i}" for i in range(25)])


@dataclass
class Upsert:
    cache_id: str
    images: list[str]
    size: int
    created: float
    ready: bool
    expires: float | None


@dataclass
class Remove:
    cache_id: str


_op = st.builds(
    Upsert,
    _cache_id,
    _image_set,
    st.sampled_from([20, 30, 40]),
    st.sampled_from([NOW - 30, NOW - 20, NOW - 10]),
    st.booleans() | st.just(True),
    st.none() | st.sampled_from([NOW - 1, NOW, NOW + 1]),
) | st.builds(Remove, _cache_id)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_op, max_size=80),
    pods=st.lists(
        st.lists(st.sampled_from([*VOCAB, "unknown"]), max_size=5), min_size=1, max_size=6
    ),
    min_matched=st.integers(1, 3),
    require_all=st.booleans(),
    now=st.sampled_from([NOW - 1, NOW, NOW + 0.5]),
    tuning=st.sampled_from([(1024, 64), (0, 1), (3, 2), (6, 1)]),
)
def test_matches_plain_python_reference(
    ops: list[Upsert | Remove],
    pods: list[list[str]],
    min_matched: int,
    require_all: bool,
    now: float,
    tuning: tuple[int, int],
) -> None:
    # Small tunings force the level-by-level, chunked search that large indexes use.
    idx = CacheIndex(small_budget=tuning[0], first_chunk=tuning[1])
    plain: dict[str, PlainCache] = {}
    for op in ops:
        if isinstance(op, Upsert):
            idx.upsert(
                op.cache_id,
                op.images,
                size_gib=op.size,
                created_at=op.created,
                ready=op.ready,
                expires_at=op.expires,
            )
            names = frozenset(normalize_image(i) for i in op.images)
            plain[op.cache_id] = PlainCache(names, op.size, op.created, op.ready, op.expires)
        else:
            assert idx.remove(op.cache_id) is (plain.pop(op.cache_id, None) is not None)
        assert len(idx) == len(plain)
        assert all(cid in idx for cid in plain)
    expected = [plain_rank(plain, pod, min_matched, require_all, now) for pod in pods]
    for pod, want in zip(pods, expected, strict=True):
        for limit in (1, 4, 100):
            got = idx.rank(
                pod, limit=limit, min_matched=min_matched, require_all=require_all, now=now
            )
            assert got == want[:limit]
        best = idx.best(pod, min_matched=min_matched, require_all=require_all, now=now)
        assert best == (want[0] if want else None)
    many = idx.best_many(pods, min_matched=min_matched, require_all=require_all, now=now)
    assert many == [w[0] if w else None for w in expected]
