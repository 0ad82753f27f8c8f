"""The cache catalog: full sync, removal, one-cache refresh, expiry and the by-phase gauge."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.cache_fakes import NOW, FakeLister, cache_model
from vk_eci.cloud.api.errors import NotFound, Retryable
from vk_eci.cloud.caches.catalog import CacheCatalog, info_from_model, parse_time
from vk_eci.metrics import Metrics


def gauge(metrics: Metrics, phase: str) -> float:
    value = metrics.registry.get_sample_value("vk_eci_image_caches", {"phase": phase})
    assert value is not None, phase
    return value


def catalog_for(lister: FakeLister, metrics: Metrics | None = None) -> CacheCatalog:
    return CacheCatalog(lister, metrics=metrics, clock=lambda: NOW)


def test_parse_time() -> None:
    assert parse_time("2023-11-14T22:13:20Z") == NOW
    assert parse_time("2023-11-14T22:13Z") == NOW - 20
    assert parse_time("") is None and parse_time(None) is None and parse_time("soon") is None


def test_info_normalises_images_and_skips_bad_ones() -> None:
    info = info_from_model(cache_model("imc-a", ["nginx", "docker.io/library/nginx:latest",
                                                 "Bad Image"], size=25, expires=NOW + 60))
    assert info.images == ("docker.io/library/nginx:latest",)
    assert info.size_gib == 25 and info.expires_at == NOW + 60
    assert info.ready(NOW) and not info.ready(NOW + 60)
    assert info.state(NOW + 60) == "Expired"


async def test_sync_fills_index_and_drops_vanished() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), cache_model("imc-b", ["redis:7"]),
                        cache_model("imc-c", ["nginx:1"], status="Creating", progress="40%"))
    catalog = catalog_for(lister)
    await catalog.sync()
    assert len(catalog) == 3 and "imc-c" in catalog
    best = catalog.index.best(["nginx:1"], now=NOW)
    assert best is not None and best.cache_id == "imc-a"  # imc-c is not Ready
    del lister.caches["imc-a"]
    await catalog.sync()
    assert "imc-a" not in catalog and catalog.index.best(["nginx:1"], now=NOW) is None
    assert lister.calls == [None, None]


async def test_a_cache_becoming_ready_is_matched_after_refresh() -> None:
    lister = FakeLister(cache_model("imc-c", ["nginx:1"], status="Creating"))
    catalog = catalog_for(lister)
    await catalog.sync()
    assert catalog.index.best(["nginx:1"], now=NOW) is None
    lister.put(cache_model("imc-c", ["nginx:1"], status="Ready"))
    info = await catalog.refresh_one("imc-c")
    assert info is not None and info.ready(NOW)
    best = catalog.index.best(["nginx:1"], now=NOW)
    assert best is not None and best.cache_id == "imc-c"
    assert lister.calls[-1] == ("imc-c",)


async def test_refresh_unknown_forgets_it() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]))
    catalog = catalog_for(lister)
    await catalog.sync()
    del lister.caches["imc-a"]
    assert await catalog.refresh_one("imc-a") is None
    assert "imc-a" not in catalog and len(catalog.index) == 0
    lister.error = NotFound("InvalidImageCache.NotFound", "no such cache")
    assert await catalog.refresh_one("imc-zzz") is None


async def test_refresh_errors_propagate() -> None:
    lister = FakeLister()
    lister.error = Retryable("ServiceUnavailable", "busy")
    catalog = catalog_for(lister)
    with pytest.raises(Retryable):
        await catalog.refresh_one("imc-a")
    lister.error = None
    assert await catalog.refresh_one("imc-a") is None  # the failed call left nothing behind


async def test_concurrent_refreshes_share_one_call() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), delay=0.05)
    catalog = catalog_for(lister)
    results = await asyncio.gather(*(catalog.refresh_one("imc-a") for _ in range(10)))
    assert all(r is not None and r.cache_id == "imc-a" for r in results)
    assert lister.calls == [("imc-a",)]


async def test_refresh_during_sync_is_not_undone_by_the_older_listing() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), delay=0.05)
    catalog = catalog_for(lister)
    sync = asyncio.create_task(catalog.sync())
    await asyncio.sleep(0.01)  # the listing (without imc-new) is in flight
    lister.put(cache_model("imc-new", ["redis:7"]))
    await catalog.refresh_one("imc-new")
    await sync
    assert "imc-new" in catalog and "imc-a" in catalog


async def test_gauge_by_phase() -> None:
    metrics = Metrics()
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), cache_model("imc-b", ["a:1"]),
                        cache_model("imc-c", ["b:1"], status="Creating"),
                        cache_model("imc-d", ["c:1"], expires=NOW - 1),
                        cache_model("imc-e", ["d:1"], status="Failed"))
    catalog = catalog_for(lister, metrics)
    await catalog.sync()
    assert gauge(metrics, "Ready") == 2
    assert gauge(metrics, "Creating") == 1 and gauge(metrics, "Failed") == 1
    assert gauge(metrics, "Expired") == 1 and gauge(metrics, "Updating") == 0
    lister.caches.clear()
    await catalog.sync()
    assert gauge(metrics, "Ready") == 0 and gauge(metrics, "Expired") == 0


async def test_run_keeps_going_after_an_error() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]))
    lister.error = Retryable("ServiceUnavailable", "busy")
    catalog = CacheCatalog(lister, resync_interval=0.01, clock=lambda: NOW)
    task = asyncio.create_task(catalog.run())
    try:
        await asyncio.sleep(0.05)
        assert catalog.last_sync_error is not None and "busy" in catalog.last_sync_error
        lister.error = None
        await asyncio.wait_for(catalog.synced.wait(), 2)
        assert "imc-a" in catalog and catalog.last_sync_error is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_ensure_synced_syncs_once_for_many_callers() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), delay=0.02)
    catalog = catalog_for(lister)
    await asyncio.gather(*(catalog.ensure_synced() for _ in range(5)))
    assert lister.calls == [None] and "imc-a" in catalog
    await catalog.ensure_synced()
    assert lister.calls == [None]


async def test_on_ready_fires_once_when_a_cache_becomes_ready() -> None:
    lister = FakeLister(cache_model("imc-c", ["nginx:1"], status="Creating"))
    catalog = catalog_for(lister)
    seen: list[str] = []
    catalog.on_ready(lambda info: seen.append(info.cache_id))
    await catalog.sync()
    assert seen == []
    lister.put(cache_model("imc-c", ["nginx:1"], status="Ready"))
    await catalog.sync()
    await catalog.refresh_one("imc-c")  # already Ready: no second call
    assert seen == ["imc-c"]


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def relisting_catalog(lister: FakeLister, ticker: Ticker) -> CacheCatalog:
    return CacheCatalog(lister, min_relist_age=5.0, clock=lambda: NOW, monotonic=ticker)


async def test_relist_only_when_the_last_listing_is_older_than_the_minimum_age() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]))
    catalog = relisting_catalog(lister, ticker)
    assert catalog.stale() and catalog.listing_age() == float("inf")
    await catalog.sync()
    ticker.t += 4.9
    assert not catalog.stale()
    assert await catalog.relist_if_stale() is False
    assert lister.calls == [None]
    ticker.t += 0.1
    lister.put(cache_model("imc-b", ["redis:7"]))
    assert await catalog.relist_if_stale() is True
    assert lister.calls == [None, None] and "imc-b" in catalog and catalog.listings == 2


async def test_concurrent_relists_share_one_listing() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), delay=0.02)
    catalog = relisting_catalog(lister, ticker)
    await catalog.sync()
    ticker.t += 60
    lister.put(cache_model("imc-b", ["redis:7"]))

    async def relist_and_look() -> tuple[bool, bool]:
        listed = await catalog.relist_if_stale()
        return listed, "imc-b" in catalog  # every caller decides on the shared listing

    results = await asyncio.gather(*(relist_and_look() for _ in range(50)))
    assert [listed for listed, _ in results].count(True) == 1 and lister.calls == [None, None]
    assert all(seen for _, seen in results)


async def test_a_failed_listing_also_holds_off_the_next_one() -> None:
    ticker = Ticker()
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), delay=0.01)
    catalog = relisting_catalog(lister, ticker)
    await catalog.sync()
    ticker.t += 60
    lister.error = Retryable("ServiceUnavailable", "down")
    results = await asyncio.gather(*(catalog.relist_if_stale() for _ in range(20)),
                                   return_exceptions=True)
    assert sum(isinstance(r, Retryable) for r in results) == 1
    assert results.count(False) == 19 and len(lister.calls) == 2
    assert "imc-a" in catalog  # the last good view is kept
    assert catalog.last_sync_error is not None and "down" in catalog.last_sync_error


async def test_ensure_synced_failing_does_not_retry_per_caller() -> None:
    from vk_eci.cloud.caches.catalog import CatalogUnavailable

    ticker = Ticker()
    lister = FakeLister(cache_model("imc-a", ["nginx:1"]), delay=0.01)
    lister.error = Retryable("ServiceUnavailable", "listing is down")
    catalog = relisting_catalog(lister, ticker)
    results = await asyncio.gather(*(catalog.ensure_synced() for _ in range(20)),
                                   return_exceptions=True)
    assert lister.calls == [None]
    assert all(isinstance(r, Retryable) and "listing is down" in str(r) for r in results)
    assert sum(isinstance(r, CatalogUnavailable) for r in results) == 19
    ticker.t += 5
    lister.error = None
    await catalog.ensure_synced()
    assert lister.calls == [None, None] and "imc-a" in catalog


async def test_building_with_names_building_caches_sharing_an_image() -> None:
    lister = FakeLister(cache_model("imc-a", ["nginx:1"], status="Creating"),
                        cache_model("imc-b", ["redis:7"], status="Preparing"),
                        cache_model("imc-c", ["nginx:1"], status="Failed"),
                        cache_model("imc-d", ["nginx:1"], status="Updating", expires=NOW - 1),
                        cache_model("imc-e", ["nginx:1"]))
    catalog = catalog_for(lister)
    await catalog.sync()
    nginx = "docker.io/library/nginx:1"
    assert catalog.building_with([nginx], NOW) == ["imc-a"]
    lister.put(cache_model("imc-a", ["nginx:1"], status="Ready"))
    await catalog.refresh_one("imc-a")
    assert catalog.building_with([nginx], NOW) == []
    catalog.drop("imc-b")
    assert catalog.building_with(["docker.io/library/redis:7"], NOW) == []


def test_observed_states_enter_the_view_at_once_without_a_listing() -> None:
    lister = FakeLister()
    metrics = Metrics()
    catalog = catalog_for(lister, metrics)
    woken: list[str] = []
    catalog.on_ready(lambda info: woken.append(info.cache_id))
    catalog.observe(cache_model("imc-a", ["nginx"], status="Creating"))
    assert catalog.get("imc-a") is not None and not catalog.get("imc-a").ready(NOW)  # type: ignore[union-attr]
    assert catalog.index.rank(["docker.io/library/nginx:latest"], now=NOW) == []
    catalog.observe(cache_model("imc-a", ["nginx"]))
    [best] = catalog.index.rank(["docker.io/library/nginx:latest"], now=NOW)
    assert best.cache_id == "imc-a" and woken == ["imc-a"]
    assert gauge(metrics, "Ready") == 1
    catalog.observe_gone("imc-a")
    assert "imc-a" not in catalog and gauge(metrics, "Ready") == 0
    assert lister.calls == []  # nothing was listed or described
