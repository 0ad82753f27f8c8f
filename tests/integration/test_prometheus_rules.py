"""The Prometheus side of vk-eci, checked with Debian's real ``promtool`` (``apt-get install
prometheus``; hack/test.sh installs it).

- the rule file (chart and deploy/prometheus copies, identical) passes ``promtool check rules``
  and its unit tests (``promtool test rules``: input series -> expected recording-rule values
  and alerts);
- deploy/prometheus/prometheus.yml passes ``promtool check config``;
- the node's real /metrics text (every metric of :class:`vk_eci.metrics.Metrics` touched) passes
  ``promtool check metrics``;
- every metric, label and recorded series the rules, their unit tests and the dashboard name
  exists (names from the live registry, not from a list kept by hand), and every dashboard
  query is valid PromQL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from vk_eci.metrics import LOOKUP_MODES, LOOKUP_RESULTS, Metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART_RULES = ROOT / "charts/vk-eci/files/vk-eci.rules.yaml"
DASHBOARD = ROOT / "charts/vk-eci/files/vk-eci-dashboard.json"
DEPLOY = ROOT / "deploy/prometheus"
DEPLOY_RULES = DEPLOY / "vk-eci.rules.yml"
RULE_TESTS = DEPLOY / "vk-eci.rules.test.yml"
PROMETHEUS_YML = DEPLOY / "prometheus.yml"

# Labels Prometheus adds at scrape time (and `le` of histogram buckets): valid on any series.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
# Realistic label values for touching each metric once.
SAMPLE_VALUES = {"mode": "auto", "result": "hit", "cache_result": "hit",
                 "action": "CreateContainerGroup", "code": "OK", "kind": "throttled",
                 "phase": "Running"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install -y --no-install-recommends prometheus "
                    "(hack/test.sh does it)")
    return path


def run(promtool: str, *args: str, stdin: bytes | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([promtool, *args], input=stdin, capture_output=True, timeout=60,
                          cwd=cwd, check=False)


def touched_metrics() -> Metrics:
    """A Metrics with every metric (and one child of each labelled one) observed once."""
    m = Metrics()
    for collector in vars(m).values():
        labelnames = getattr(collector, "_labelnames", None)
        if labelnames is None:
            continue  # the registry itself
        child = collector.labels(**{n: SAMPLE_VALUES.get(n, "x") for n in labelnames}) \
            if labelnames else collector
        for method in ("inc", "observe", "set"):
            if hasattr(child, method):
                getattr(child, method)(1)
                break
    return m


@dataclass(frozen=True)
class Exported:
    """What the registry exports: every sample name and the labels of its family."""

    labels: dict[str, frozenset[str]]  # sample name -> label names (incl. scrape-time labels)

    @classmethod
    def of(cls, metrics: Metrics) -> Exported:
        suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                    "histogram": ("_bucket", "_count", "_sum", "_created"),
                    "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}
        out: dict[str, frozenset[str]] = {}
        for family in metrics.registry.collect():
            names = {n for s in family.samples for n in s.labels} - {"le"}
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                out[family.name + suffix] = frozenset(names | extra | TARGET_LABELS)
        return cls(out)


SERIES = re.compile(r"(?<![\w:])(vk_eci(?::[a-z0-9_]+)+|vk_eci_[a-z0-9_]+)\b(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


def unknown_names(expr: str, exported: Exported, recorded: dict[str, frozenset[str]]) -> list[str]:
    """Series and label names in ``expr`` that neither the registry nor a recording rule has."""
    problems: list[str] = []
    used: list[frozenset[str]] = []
    for m in SERIES.finditer(expr):
        name, selector = m.group(1), m.group(2) or ""
        known = recorded.get(name) if ":" in name else exported.labels.get(name)
        if known is None:
            problems.append(f"series {name}")
            continue
        used.append(known)
        problems += [f"label {lbl} of {name}" for lbl in MATCHER.findall(selector)
                     if lbl not in known]
    if used:
        # A grouping label must exist on at least one of the series the expression reads.
        allowed = frozenset().union(*used)
        for group in GROUPING.findall(expr):
            problems += [f"grouping label {lbl}" for lbl in
                         (g.strip() for g in group.split(",")) if lbl and lbl not in allowed]
    return problems


def rule_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CHART_RULES.read_text(encoding="utf-8"))
    return data


def rules() -> Iterator[dict[str, Any]]:
    for group in rule_file()["groups"]:
        yield from group["rules"]


def recorded_labels(exported: Exported) -> dict[str, frozenset[str]]:
    """Each recording rule's name -> the labels its result keeps (by (...) of the expression)."""
    out: dict[str, frozenset[str]] = {}
    for rule in rules():
        if "record" in rule:
            groups = GROUPING.findall(rule["expr"])
            kept = {g.strip() for g in groups[0].split(",")} if groups else set()
            out[rule["record"]] = frozenset(kept - {"le"})
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


# --- promtool --------------------------------------------------------------------------


def test_rule_files_pass_promtool_check_and_are_identical(promtool: str) -> None:
    assert CHART_RULES.read_bytes() == DEPLOY_RULES.read_bytes(), (
        f"{DEPLOY_RULES.relative_to(ROOT)} must be a copy of {CHART_RULES.relative_to(ROOT)}")
    result = run(promtool, "check", "rules", str(CHART_RULES))
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    n_rules = sum(1 for _ in rules())
    assert f"SUCCESS: {n_rules} rules found" in result.stdout.decode()


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS.name, cwd=DEPLOY)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert "SUCCESS" in result.stdout.decode()


def test_rule_unit_tests_cover_every_rule() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    exprs = " ".join(t["expr"] for case in tests for t in case.get("promql_expr_test", []))
    alerts = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])
              if t.get("exp_alerts")}
    for rule in rules():
        if "alert" in rule:
            assert rule["alert"] in alerts, f"no unit test fires alert {rule['alert']}"
    for record in (r["record"] for r in rules() if "record" in r):
        assert record in exprs, f"no unit test checks the values of {record}"


def test_a_broken_expectation_fails_the_unit_tests(promtool: str, tmp_path: Path) -> None:
    # The unit tests can fail: change the expected hit ratio and promtool must say so.
    shutil.copy(DEPLOY_RULES, tmp_path / DEPLOY_RULES.name)
    text = RULE_TESTS.read_text(encoding="utf-8")
    hit_ratio = "value: 0.5  # ECI's word"
    assert text.count(hit_ratio) == 1
    (tmp_path / RULE_TESTS.name).write_text(text.replace(hit_ratio, "value: 0.625  #"))
    result = run(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "image_cache_hit_ratio" in result.stdout.decode() + result.stderr.decode()


def test_prometheus_yml_passes_promtool_check_config(promtool: str) -> None:
    result = run(promtool, "check", "config", PROMETHEUS_YML.name, cwd=DEPLOY)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    config = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    assert config["rule_files"] == [DEPLOY_RULES.name]
    # The alert on a missing target reads job="vk-eci".
    assert [j["job_name"] for j in config["scrape_configs"]] == ["vk-eci"]
    assert 'up{job="vk-eci"}' in CHART_RULES.read_text(encoding="utf-8")


def test_node_metrics_pass_promtool_check_metrics(promtool: str) -> None:
    exposition = generate_latest(touched_metrics().registry)
    families = {(f.name, f.type) for f in Metrics().registry.collect()}
    assert len(families) >= 11
    # Every family shows in the output (counters as name_total), so promtool checks them all.
    for name, kind in families:
        shown = name + "_total" if kind == "counter" else name
        assert f"# TYPE {shown} {kind}\n".encode() in exposition, name
    result = run(promtool, "check", "metrics", stdin=exposition)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""


def test_promtool_check_metrics_does_flag_a_bad_name(promtool: str) -> None:
    # The check above can fail: promtool reports a counter without _total.
    bad = b"# HELP vk_eci_bad A counter.\n# TYPE vk_eci_bad counter\nvk_eci_bad 1\n"
    result = run(promtool, "check", "metrics", stdin=bad)
    assert result.returncode != 0
    assert b"_total" in result.stdout + result.stderr


# --- names referenced by rules, tests and dashboard -----------------------------------


def test_spec_metrics_exist() -> None:
    exported = Exported.of(touched_metrics())
    for name in ("vk_eci_image_cache_lookups_total", "vk_eci_pod_images_requested_total",
                 "vk_eci_pod_images_served_from_cache_total",
                 "vk_eci_image_cache_match_duration_seconds_bucket",
                 "vk_eci_pod_create_duration_seconds_bucket",
                 "vk_eci_pod_start_duration_seconds_bucket", "vk_eci_eci_api_requests_total",
                 "vk_eci_eci_api_request_duration_seconds_bucket", "vk_eci_pods",
                 "vk_eci_image_caches", "vk_eci_node_ready"):
        assert name in exported.labels, name
    assert {"mode", "result"} <= exported.labels["vk_eci_image_cache_lookups_total"]
    assert "cache_result" in exported.labels["vk_eci_pod_start_duration_seconds_bucket"]


def test_every_name_in_the_rules_exists() -> None:
    exported = Exported.of(touched_metrics())
    recorded = recorded_labels(exported)
    problems = []
    for rule in rules():
        for p in unknown_names(rule["expr"], exported, recorded):
            problems.append(f"{rule.get('record') or rule.get('alert')}: {p}")
    assert problems == []


def test_rule_label_values_are_ones_the_node_emits() -> None:
    text = CHART_RULES.read_text(encoding="utf-8") + DASHBOARD.read_text(encoding="utf-8")
    for value in re.findall(r'result="(\w+)"', text):
        assert value in LOOKUP_RESULTS, value
    for value in re.findall(r'mode="(\w+)"', text):
        assert value in LOOKUP_MODES, value


def test_every_name_in_the_rule_unit_tests_exists() -> None:
    exported = Exported.of(touched_metrics())
    recorded = recorded_labels(exported)
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    problems = []
    for case in tests:
        for series in case["input_series"]:
            name = series["series"].split("{")[0]
            if name == "up":
                continue  # written by Prometheus itself
            problems += unknown_names(series["series"], exported, recorded)
            assert name in exported.labels, f"input series {name} is not a node metric"
        for t in case.get("promql_expr_test", []):
            problems += unknown_names(t["expr"], exported, recorded)
    assert problems == []


def test_every_name_in_the_dashboard_exists() -> None:
    exported = Exported.of(touched_metrics())
    recorded = recorded_labels(exported)
    queries = dashboard_queries()
    assert len(queries) >= 10
    problems = [f"{title}: {p}" for title, expr in queries
                for p in unknown_names(expr, exported, recorded)]
    assert problems == []
    exprs = " ".join(e for _, e in queries)
    # The dashboard is of hit rate and start latency...
    assert "vk_eci:image_cache_hit_ratio:rate5m" in exprs
    assert "vk_eci:pod_start_duration_seconds:p99_rate5m" in exprs
    # ...and of how late statuses reach Kubernetes, at what ECI API cost...
    assert "vk_eci_pod_status_lag_seconds_bucket" in exprs
    assert "sum by (action) (rate(vk_eci_eci_api_requests_total" in exprs
    # ...and of what the cache advisor expects to save and what its caches saved.
    assert "sum(vk_eci_imagecache_advisor_expected_savings_seconds_per_day)" in exprs
    assert "rate(vk_eci_imagecache_advisor_realised_savings_seconds_total" in exprs


def test_name_check_reports_unknown_series_and_labels() -> None:
    exported = Exported.of(touched_metrics())
    recorded = recorded_labels(exported)
    assert unknown_names('rate(vk_eci_nope_total[5m])', exported, recorded) == \
        ["series vk_eci_nope_total"]
    assert unknown_names('vk_eci_pods{colour="red"}', exported, recorded) == \
        ["label colour of vk_eci_pods"]
    assert unknown_names('sum by (colour) (vk_eci_pods)', exported, recorded) == \
        ["grouping label colour"]
    assert unknown_names('vk_eci:nope:rate5m', exported, recorded) == ["series vk_eci:nope:rate5m"]
    assert unknown_names('sum by (phase) (vk_eci_pods{job="vk-eci"})', exported, recorded) == []


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    # promtool parses every query as the expression of a recording rule.
    rules_out = [{"record": f"dashboard:q{n}", "expr": expr.replace("$__rate_interval", "5m")}
                 for n, (_, expr) in enumerate(dashboard_queries())]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules_out}]}))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_dashboard_is_a_grafana_dashboard() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["uid"] == "vk-eci" and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource"]
    for panel in dash["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
