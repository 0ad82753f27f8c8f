"""vk_eci.kubelet.stats: Summary API JSON and /metrics/resource text from pod usage."""

from __future__ import annotations

import datetime as dt

from prometheus_client.parser import text_string_to_metric_families

from vk_eci.kubelet import stats
from vk_eci.provider import ContainerUsage, PodUsage

T = dt.datetime(2024, 1, 1, 0, 1, 0, tzinfo=dt.UTC)
START = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.UTC)


def pod(name: str, cpu: int, ws: int, ns: str = "ns") -> PodUsage:
    c = ContainerUsage(name="main", cpu_nano_cores=cpu, cpu_core_nano_seconds=cpu * 60,
                       memory_working_set_bytes=ws, memory_usage_bytes=ws + 1,
                       memory_rss_bytes=ws, start_time=START)
    return PodUsage(namespace=ns, name=name, uid=f"uid-{name}", timestamp=T,
                    cpu_nano_cores=cpu, cpu_core_nano_seconds=cpu * 60,
                    memory_working_set_bytes=ws, memory_usage_bytes=ws + 1,
                    memory_rss_bytes=ws, containers=(c,), rx_bytes=10, tx_bytes=20,
                    start_time=START)


def test_summary_has_node_totals_and_pods() -> None:
    s = stats.summary("vk", START, [pod("a", 100, 1000), pod("b", 50, 500)])
    assert s["node"]["nodeName"] == "vk"
    assert s["node"]["cpu"] == {"time": "2024-01-01T00:01:00Z", "usageNanoCores": 150,
                                "usageCoreNanoSeconds": 9000}
    assert s["node"]["memory"]["workingSetBytes"] == 1500
    a = s["pods"][0]
    assert a["podRef"] == {"name": "a", "namespace": "ns", "uid": "uid-a"}
    assert a["startTime"] == "2024-01-01T00:00:00Z"
    assert a["containers"][0]["name"] == "main"
    assert a["containers"][0]["memory"]["usageBytes"] == 1001
    assert a["network"]["rxBytes"] == 10 and a["network"]["interfaces"][0]["txBytes"] == 20


def test_summary_of_no_pods_is_zero() -> None:
    s = stats.summary("vk", START, [], now=T)
    assert s["pods"] == [] and s["node"]["cpu"]["usageNanoCores"] == 0


def test_resource_metrics_parse_as_prometheus_text_with_kubelet_names() -> None:
    text = stats.resource_metrics([pod("b", 50, 500), pod('we"ird', 2_000_000_000, 7)])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # the parser strips _total from counter family names
    cpu = families["container_cpu_usage_seconds"]
    assert cpu.type == "counter"
    samples = {(s.labels["namespace"], s.labels["pod"], s.labels["container"]): s
               for s in cpu.samples}
    assert samples[("ns", "b", "main")].value == 50 * 60 / 1e9
    assert samples[("ns", 'we"ird', "main")].value == 120.0
    assert samples[("ns", "b", "main")].timestamp == T.timestamp()
    ws = {s.labels["pod"]: s.value for s in families["pod_memory_working_set_bytes"].samples}
    assert ws == {"b": 500, 'we"ird': 7}
    [node] = families["node_memory_working_set_bytes"].samples
    assert node.value == 507
    [start] = [s for s in families["container_start_time_seconds"].samples
               if s.labels["pod"] == "b"]
    assert start.value == START.timestamp()
    [err] = families["resource_scrape_error"].samples
    assert err.value == 0


def test_resource_metrics_flag_a_scrape_error() -> None:
    text = stats.resource_metrics([], error=True)
    assert "resource_scrape_error 1" in text
    assert "\nnode_cpu_usage_seconds_total " not in text  # no sample, only HELP/TYPE


async def test_usage_cache_shares_one_fetch_within_ttl() -> None:
    calls = []
    now = [0.0]

    class IO:
        async def pod_usage(self) -> list[PodUsage]:
            calls.append(now[0])
            return [pod("a", 1, 1)]

    cache = stats.UsageCache(IO(), ttl=5, clock=lambda: now[0])  # type: ignore[arg-type]
    await cache.get()
    await cache.get()
    now[0] = 5.0
    await cache.get()
    assert calls == [0.0, 5.0]
