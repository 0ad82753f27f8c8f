"""The demo's Prometheus summary waits for every start it made: a cached start's latency series
can reach Prometheus a scrape after the uncached one's, and the summary once printed "none"
alone. The server here answers instant queries as Prometheus's HTTP API does, gaining the "hit"
series on a later query, as a later scrape and rule evaluation would add it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.http import serving
from vk_eci import demo_prometheus as prom


def _series(result: str, seconds: float) -> dict[str, Any]:
    return {"metric": {"cache_result": result}, "value": [0, str(seconds)]}


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[str, list[str]]]:
    queries: list[str] = []

    async def query(request: web.Request) -> web.Response:
        queries.append(request.query["query"])
        late = len(queries) > 3   # the cached start's series appear after a few queries
        result = [_series("none", 7.5), *([_series("hit", 0.8)] if late else [])]
        return web.json_response({"status": "success",
                                  "data": {"resultType": "vector", "result": result}})

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}", queries


async def test_wait_for_waits_until_each_cache_result_has_a_series(
        prometheus: tuple[str, list[str]]) -> None:
    url, queries = prometheus
    found = await prom.wait_for(url, "latency", 30, results=("hit", "none"))
    assert sorted(s["metric"]["cache_result"] for s in found) == ["hit", "none"]
    assert len(queries) == 4


async def test_without_results_the_first_series_is_enough(
        prometheus: tuple[str, list[str]]) -> None:
    url, queries = prometheus
    found = await prom.wait_for(url, "latency", 30)
    assert [s["metric"]["cache_result"] for s in found] == ["none"]
    assert len(queries) == 1


async def test_a_result_that_never_comes_gives_what_there_is_at_the_limit(
        prometheus: tuple[str, list[str]]) -> None:
    url, _ = prometheus
    found = await prom.wait_for(url, "latency", 0, results=("partial",))
    assert [s["metric"]["cache_result"] for s in found] == ["none"]
