"""A real Prometheus for ``vk-eci demo`` (and the dashboard test): it scrapes the node with the
chart's own recording rules and alerts, and answers the chart's dashboard queries.

Debian's ``prometheus`` package, not one built from its Go module: hack/test.sh installs that
package already (for ``promtool``), it is a single static binary with the web UI included, and
building Prometheus from source would need its web assets (npm) on top of several minutes of Go.
The rules are ``charts/vk-eci/files/vk-eci.rules.yaml`` with only each group's evaluation
interval changed (a demo or test cannot wait for 30 s evaluations); the queries are read from
``charts/vk-eci/files/vk-eci-dashboard.json`` with its template variables filled in.

It is started as a process of the control plane (``state.start_process``), so ``vk-eci cluster
down`` and the demo's Ctrl-C stop it with the rest.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import socket
import time
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from vk_eci.controlplane.state import ControlPlane, start_process

CHART = Path(__file__).resolve().parents[1] / "charts" / "vk-eci" / "files"
RULES = CHART / "vk-eci.rules.yaml"
DASHBOARD = CHART / "vk-eci-dashboard.json"
NAME = "prometheus"
HIT_RATE_PANEL = "Cache hit rate (as ECI reports it)"
START_PANELS = ("Start latency p50 by cache result", "Start latency p90 by cache result")


def unavailable() -> str | None:
    """Why no Prometheus can run here, or None."""
    return None if shutil.which(NAME) else "no `prometheus` (apt-get install prometheus)"


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    legend: str


def panel_queries(rate_interval: str, dashboard: Path = DASHBOARD) -> list[Panel]:
    """Every query of every panel, with the dashboard's template variables as Grafana fills
    them (``$__rate_interval``, ``$__interval`` and ``$__range`` all ``rate_interval``)."""
    panels: list[Panel] = []
    for panel in json.loads(dashboard.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = str(target["expr"])
            for var in ("$__rate_interval", "$__interval", "$__range"):
                expr = expr.replace(var, rate_interval)
            panels.append(Panel(panel["title"], expr, str(target.get("legendFormat", ""))))
    return panels


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, targets: list[str], interval: str) -> Path:
    """prometheus.yml scraping ``targets`` (job ``vk-eci``, as the alerts expect) every
    ``interval``, with the chart's rules evaluated every ``interval``."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = interval
    (directory / "vk-eci.rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
              "rule_files": ["vk-eci.rules.yaml"],
              "scrape_configs": [{"job_name": "vk-eci", "scrape_interval": interval,
                                  "scrape_timeout": interval,
                                  "static_configs": [{"targets": targets}]}]}
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start(cp: ControlPlane, targets: list[str], *, interval: str = "5s",
          timeout: float = 30) -> str:
    """Start Prometheus for ``cp`` scraping ``targets``; returns its URL once it is ready.

    Its storage starts empty: an earlier Prometheus of the same directory (a demo run before,
    a test before in the session) stopped without marking its series stale, so they would
    answer ``wait_for`` before this one's first scrape and count in the dashboard's windows
    (on the demo's fixed metrics address they are even the same series)."""
    directory = cp.dir / NAME
    on_disk = ControlPlane.load(cp.dir)
    pid = on_disk.running_pids().get(NAME) if on_disk is not None else None
    if pid is not None:
        raise RuntimeError(f"prometheus already runs for {cp.dir} (pid {pid})")
    shutil.rmtree(directory / "data", ignore_errors=True)
    config = write_config(directory, targets, interval)
    port = _free_port("127.0.0.1")
    proc = start_process(cp, NAME, [
        shutil.which(NAME) or NAME, f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d", "--log.level=warn"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = (cp.dir / "logs" / f"{NAME}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"prometheus not ready after {timeout}s")
        time.sleep(0.3)


async def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query: the ``result`` list of Prometheus's answer (vector results)."""
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/v1/query",
                                                         params=params) as resp:
        body = await resp.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error', body)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


async def wait_for(url: str, expr: str, limit: float, *,
                   results: Collection[str] = ()) -> list[dict[str, Any]]:
    """Until ``expr`` returns a series with a number (rules need two scrapes, then an
    evaluation) and, with ``results``, one for each of these ``cache_result`` values: one
    result's series may be there a scrape before another's."""
    deadline = time.monotonic() + limit
    while True:
        found = [s for s in await query(url, expr) if not math.isnan(value(s))]
        have = {s["metric"].get("cache_result") for s in found}
        if (found and have.issuperset(results)) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1)


async def summary(url: str, limit: float = 60, *, results: Collection[str] = ()) -> str:
    """The hit rate and the start-time p50/p90 per cache result, from the dashboard's queries;
    with ``results``, once each of these cache results has its start times (or ``limit``)."""
    queries = {p.title: p.expr for p in panel_queries("1m")}
    hit = await wait_for(url, queries[HIT_RATE_PANEL], limit)
    lines = [f"cache hit rate (ECI's word, dashboard panel {HIT_RATE_PANEL!r}): "
             + (f"{value(hit[0]):.0%}" if hit else "no data yet")]
    for title in START_PANELS:
        found = await wait_for(url, queries[title], limit, results=results)
        cells = ", ".join(f"{s['metric'].get('cache_result', '?')} {value(s):.1f}s"
                          for s in sorted(found, key=lambda s: str(s["metric"])))
        lines.append(f"{title}: {cells or 'no data yet'}")
    return "\n".join(lines)
