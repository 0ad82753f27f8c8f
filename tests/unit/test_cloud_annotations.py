"""The image-cache annotations of a pod, keys and aliases, good and bad values."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import V1ObjectMeta, V1Pod

from vk_eci.cloud.caches.annotations import (
    AUTO_ALIAS,
    AUTO_KEY,
    EXPLICIT_ALIAS,
    EXPLICIT_KEY,
    FAIL_ON_CREATE_ERR_KEY,
    MATCH_COUNT_KEY,
    PERFECT_MATCH_KEY,
    parse_cache_request,
)
from vk_eci.cloud.placement.values import annotations_of, parse_bool

IMC = "imc-2zeditzeoemfhqor4rf8"


def test_no_annotation_asks_for_nothing() -> None:
    req = parse_cache_request({"unrelated": "x"})
    assert req.mode is None
    assert req.problems == () and req.notes == ()


@pytest.mark.parametrize("key", [EXPLICIT_KEY, EXPLICIT_ALIAS])
def test_explicit_id_from_key_or_alias(key: str) -> None:
    req = parse_cache_request({key: IMC})
    assert req.mode == "explicit"
    assert req.explicit_id == IMC and req.explicit_key == key and req.explicit_valid
    assert req.problems == ()


def test_explicit_id_blanks_trimmed() -> None:
    assert parse_cache_request({EXPLICIT_KEY: f"  {IMC} "}).explicit_id == IMC


@pytest.mark.parametrize("value", ["s-2zeditzeoemfhqor4rf8", "imc-", "imc-abc_def", "IMC",
                                   "imc-a b", "imc-" + "a" * 65])
def test_malformed_explicit_id_is_still_explicit_but_invalid(value: str) -> None:
    req = parse_cache_request({EXPLICIT_KEY: value})
    assert req.mode == "explicit"
    assert not req.explicit_valid
    [problem] = req.problems
    assert problem.key == EXPLICIT_KEY and problem.value == value
    assert EXPLICIT_KEY in problem.message() and value in problem.message()


def test_empty_explicit_id_is_a_problem_and_asks_nothing() -> None:
    req = parse_cache_request({EXPLICIT_ALIAS: ""})
    assert req.mode is None
    assert [p.key for p in req.problems] == [EXPLICIT_ALIAS]


@pytest.mark.parametrize("key", [AUTO_KEY, AUTO_ALIAS])
@pytest.mark.parametrize("value,auto", [("true", True), ("TRUE", True), ("True", True),
                                        (" tRuE ", True), ("false", False), ("FALSE", False)])
def test_auto_booleans_any_case(key: str, value: str, auto: bool) -> None:
    req = parse_cache_request({key: value})
    assert req.auto is auto
    assert req.mode == ("auto" if auto else None)
    assert req.problems == ()


@pytest.mark.parametrize("value", ["yes", "1", "", "on", "truee"])
def test_bad_boolean_is_invalid_annotation(value: str) -> None:
    req = parse_cache_request({AUTO_KEY: value})
    assert req.mode is None
    [problem] = req.problems
    assert (problem.key, problem.value) == (AUTO_KEY, value)
    assert "true" in problem.reason


def test_explicit_wins_over_auto_with_a_note() -> None:
    req = parse_cache_request({EXPLICIT_KEY: IMC, AUTO_KEY: "true"})
    assert req.mode == "explicit" and req.explicit_id == IMC
    [note] = req.notes
    assert IMC in note and AUTO_KEY in note and "wins" in note


def test_key_wins_over_alias_when_they_disagree() -> None:
    req = parse_cache_request({EXPLICIT_KEY: IMC, EXPLICIT_ALIAS: "imc-other"})
    assert req.explicit_id == IMC
    assert any(EXPLICIT_ALIAS in n and "imc-other" in n for n in req.notes)
    same = parse_cache_request({EXPLICIT_KEY: IMC, EXPLICIT_ALIAS: IMC})
    assert same.notes == ()


def test_perfect_match_and_count() -> None:
    req = parse_cache_request({AUTO_KEY: "true", PERFECT_MATCH_KEY: "True",
                               MATCH_COUNT_KEY: "3"})
    assert req.perfect_match and req.match_count == 3 and req.min_matched == 3


@pytest.mark.parametrize("value", ["-1", "two", "1.5", "", "٣", str(10**6)])
def test_bad_match_count(value: str) -> None:
    req = parse_cache_request({AUTO_KEY: "true", MATCH_COUNT_KEY: value})
    assert req.match_count is None and req.min_matched == 1
    [problem] = req.problems
    assert (problem.key, problem.value) == (MATCH_COUNT_KEY, value)


def test_zero_count_means_the_default_of_one() -> None:
    req = parse_cache_request({AUTO_KEY: "true", MATCH_COUNT_KEY: "0"})
    assert req.problems == () and req.match_count == 0 and req.min_matched == 1


def test_bad_perfect_match_and_fail_on_err() -> None:
    req = parse_cache_request({AUTO_KEY: "true", PERFECT_MATCH_KEY: "maybe",
                               FAIL_ON_CREATE_ERR_KEY: "nope"})
    assert not req.perfect_match and not req.fail_on_create_err
    assert sorted(p.key for p in req.problems) == sorted([PERFECT_MATCH_KEY,
                                                          FAIL_ON_CREATE_ERR_KEY])


def test_fail_on_create_err() -> None:
    assert parse_cache_request({FAIL_ON_CREATE_ERR_KEY: "true"}).fail_on_create_err


def test_parse_bool() -> None:
    assert parse_bool("tRUE") is True and parse_bool("False") is False
    assert parse_bool("t") is None


def test_annotations_of_reads_the_pods_own_metadata_only() -> None:
    pod = V1Pod(metadata=V1ObjectMeta(name="p", annotations={AUTO_KEY: "true"}))
    assert annotations_of(pod) == {AUTO_KEY: "true"}
    assert annotations_of(V1Pod(metadata=V1ObjectMeta(name="p"))) == {}
    assert annotations_of({"metadata": {"annotations": {EXPLICIT_KEY: IMC}}}) == {
        EXPLICIT_KEY: IMC}
    assert annotations_of({}) == {}
