"""The chart's Grafana dashboard answers with the numbers of a known workload, from a real
Prometheus that scrapes a real node with the chart's recording rules and alerts.

The workload on the real control plane and the emulator: 3 pods start from a cache holding all
their images (hit), 1 from a cache holding one of its two (partial), 2 find no cache (miss) and
1 pod fails. Then every query of every panel of ``charts/vk-eci/files/vk-eci-dashboard.json``,
template variables filled in, is asked of Prometheus's query API: each answers with data, and
the hit-rate, miss and failure panels equal the workload's numbers. Prometheus is Debian's
(``vk_eci.demo_prometheus`` says why), scraping and evaluating every second.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from tests.fixtures.http import serving
from tests.fixtures.node import NodeFactory, eventually
from tests.integration.test_image_cache_pods import BUSYBOX, NGINX, REDIS, Scenario
from vk_eci import demo_prometheus as prom
from vk_eci.cloud.caches.annotations import AUTO_KEY
from vk_eci.controlplane import cluster
from vk_eci.controlplane.state import ControlPlane
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration

# $__rate_interval: longer than the test, so a rate times it is a count (asked at a scrape's
# instant: see the miss count below)
WINDOW_S = 3600
HITS, PARTIAL, MISSES = ("hit-a", "hit-b", "hit-c"), "partial", ("miss-a", "miss-b")


def _stop(cp: cluster.ControlPlane) -> None:
    state = cluster.ControlPlane.load(cp.dir)
    pid = state.running_pids().get(prom.NAME) if state else None
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid in (state.running_pids().values() if state else ()) and \
                time.monotonic() < deadline:
            time.sleep(0.1)


async def _last_scrape(url: str, metric: str) -> float:
    """The time of the latest sample of ``metric`` (a failed scrape leaves none)."""
    series = await prom.query(url, f"{metric}[{WINDOW_S}s]")
    assert series, f"no samples of {metric}"
    return max(float(s["values"][-1][0]) for s in series)


async def test_every_panel_answers_and_equals_the_workload(
        node_factory: NodeFactory, emulator_realtime: Emulator, control_plane: Any,
        kube_api: client.ApiClient, namespace: str) -> None:
    if prom.unavailable():
        pytest.fail(f"{prom.unavailable()} (hack/test.sh installs it)")
    node = await node_factory(imagecache_resync_interval="600", imagecache_min_relist_age="1")
    target = node.metrics_url.split("//", 1)[1].split("/", 1)[0]
    url = await asyncio.to_thread(prom.start, control_plane, [target], interval="1s")
    try:
        # Scraped before the first pod: every counter starts at 0 in Prometheus.
        assert len(await prom.wait_for(url, "vk_eci_image_cache_results_total", 60)) == 6
        scene = Scenario(emulator_realtime, node, kube_api, namespace)
        await scene.cache("dash-nginx", [NGINX])
        auto = {AUTO_KEY: "true"}
        for app in HITS:
            await scene.deploy(app, [NGINX], auto)
        await scene.deploy(PARTIAL, [NGINX, BUSYBOX], auto)
        await scene.deploy(MISSES[0], [REDIS], auto)
        await scene.deploy(MISSES[1], ["postgres:16"], auto)
        await scene.core.create_namespaced_pod(namespace, client.V1Pod(
            metadata=client.V1ObjectMeta(name="fails"),
            spec=client.V1PodSpec(node_name=node.name, restart_policy="Never",
                                  containers=[client.V1Container(
                                      name="main", image=BUSYBOX,
                                      command=["sh", "-c", "exit 1"])])))
        for app in (*HITS, PARTIAL, *MISSES):
            await scene.wait_phase(app, "Running", 120)

        async def counted() -> bool:
            got = await prom.query(url, "sum(vk_eci_image_cache_results_total)")
            return bool(got) and prom.value(got[0]) == 6

        await eventually(counted, 60, "6 cache results scraped", node)
        queries = prom.panel_queries(f"{WINDOW_S}s")
        by_title: dict[str, list[prom.Panel]] = {}
        for panel in queries:
            by_title.setdefault(panel.title, []).append(panel)

        async def hit_rate_is_half() -> bool:
            [hit] = by_title[prom.HIT_RATE_PANEL]
            got = await prom.query(url, hit.expr)
            return bool(got) and abs(prom.value(got[0]) - 0.5) < 1e-9

        await eventually(hit_rate_is_half, 30, "hit rate 3/6 from the recording rule", node)

        async def failed_is_one() -> bool:
            [phases] = by_title["Pods by phase"]
            got = {s["metric"].get("phase"): prom.value(s)
                   for s in await prom.query(url, phases.expr)}
            return got.get("Failed") == 1
        await eventually(failed_is_one, 60, "Pods by phase: Failed 1", node)

        # The miss count: ECI's results per second over the window, times the window, asked at
        # the instant of the last scrape. rate() extrapolates the increase between a series'
        # first and last samples towards the window's ends: not before the first (each series
        # starts at 0, scraped before the first pod), but after the last by up to 1.1 scrape
        # intervals. These series are only seconds old, so asked between two scrapes the
        # panel reads up to 1 + 1.1/(samples - 1) times the count (3 hits as 3.6, i.e. 4).
        # At a scrape's instant there is nothing to extrapolate: the answer is the count.
        results = by_title["Lookups (node) and caches used (ECI)"][1]
        at = await _last_scrape(url, "vk_eci_image_cache_results_total")
        counts: dict[str, float] = {}
        for s in await prom.query(url, results.expr, at=at):
            result = s["metric"]["result"]
            counts[result] = counts.get(result, 0) + prom.value(s) * WINDOW_S
        assert {k: round(v, 6) for k, v in counts.items()} == {"hit": 3, "partial": 1, "miss": 2}

        # Every panel query answers with data (a number, not only NaN). The recording rules'
        # series follow their inputs by an evaluation or two, later on a loaded machine.
        empty: list[str] = []

        async def all_answer() -> bool:
            empty.clear()
            for panel in queries:
                got = await prom.query(url, panel.expr)
                if not [s for s in got if not math.isnan(prom.value(s))]:
                    empty.append(f"{panel.title}: {panel.expr}")
            return not empty

        if not await _within(all_answer, 30):
            raise AssertionError("panels without data:\n" + "\n".join(empty))
    finally:
        await asyncio.to_thread(_stop, control_plane)


async def _within(check: Any, seconds: float) -> bool:
    """Whether ``check()`` holds within ``seconds`` (asked every second)."""
    end = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() >= end:
            return False
        await asyncio.sleep(1)
    return True


async def test_a_second_prometheus_of_a_directory_starts_empty(tmp_path: Any) -> None:
    """A test or demo before this one on the same control plane left a TSDB: its series (a
    stopped Prometheus does not mark them stale) must not answer the next one's queries."""
    if prom.unavailable():
        pytest.fail(f"{prom.unavailable()} (hack/test.sh installs it)")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="vk_eci_image_cache_results_total{result=\"hit\"} 3\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    (tmp_path / "logs").mkdir()
    cp = ControlPlane(dir=tmp_path, version="test", ports={})
    cp.save()
    async with serving(app) as port:
        try:
            url = await asyncio.to_thread(prom.start, cp, [f"127.0.0.1:{port}"], interval="1s")
            assert await prom.wait_for(url, "vk_eci_image_cache_results_total", 60)
            await asyncio.to_thread(_stop, cp)
            # Again, scraping nothing: what it answers can only come from the first one.
            url = await asyncio.to_thread(prom.start, cp, [], interval="1s")
            assert await prom.query(url, "vk_eci_image_cache_results_total") == []
            assert await prom.query(url, "vk_eci_image_cache_results_total[3600s]") == []
            with pytest.raises(RuntimeError, match="already runs"):
                prom.start(cp, [], interval="1s")
        finally:
            await asyncio.to_thread(_stop, cp)
