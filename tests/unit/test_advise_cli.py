"""``vk-eci advise`` on files: the plan table, ImageCache YAML, and bad input named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from vk_eci.advisor import persist
from vk_eci.advisor.model import ADVISOR_OWNED_LABEL, Action, PlannedCache
from vk_eci.advisor.objects import existing_from_object, imagecache_object
from vk_eci.advisor.record import DemandRecord
from vk_eci.cli import main

CRD = Path(__file__).parents[2] / "charts/vk-eci/crds/imagecaches.eci.alibabacloud.com.yaml"
DEMAND = """
- images: [ci/base:1, ci/tools:3, ci/app:1]
  pods: 40
  window_hours: 4
  pull_seconds: {ci/base:1: 30, ci/tools:3: 20, ci/app:1: 10}
  workloads: [ci/Job/build-1]
- images: [ci/base:1, ci/tools:3, ci/app:2]
  pods: 30
  window_hours: 4
  pull_seconds: {ci/base:1: 30, ci/tools:3: 20, ci/app:2: 10}
  workloads: [ci/Job/build-2]
- images: [flink:1.13]
  pods: 10
  window_hours: 4
  pull_seconds: {flink:1.13: 47}
  workloads: [analytics/FlinkDeployment/wordcount]
"""
CACHES = f"""
apiVersion: eci.alibabacloud.com/v1
kind: ImageCache
metadata: {{name: team-flink, creationTimestamp: "2026-11-01T00:00:00Z"}}
spec: {{images: [flink:1.13]}}
---
apiVersion: eci.alibabacloud.com/v1
kind: ImageCache
metadata:
  name: advisor-stale
  labels: {{{ADVISOR_OWNED_LABEL}: "true"}}
  creationTimestamp: "2026-11-01T00:00:00Z"
spec: {{images: [old:1], imageCacheSize: 20}}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    demand, caches = tmp_path / "demand.yaml", tmp_path / "caches.yaml"
    demand.write_text(DEMAND)
    caches.write_text(CACHES)
    return str(demand), str(caches)


def _advise(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    now = [] if "--now" in argv else ["--now", "1800000000"]
    code = main(["advise", *now, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_lists_create_and_retire_with_savings_and_workloads(
        files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _advise(capsys, "--demand", files[0], "--caches", files[1])
    assert code == 0
    head, *rows, total = out.splitlines()
    assert head.split()[:5] == ["ACTION", "NAME", "IMAGES", "SIZE", "GiB"]
    create = next(r for r in rows if r.startswith("create"))
    # One cache serves the CI family (both tag bumps); the flink pods have the user's cache.
    assert "ci/base:1" in create and "ci/app:1" in create and "ci/app:2" in create
    assert "ci/Job/build-1, ci/Job/build-2" in create
    # (30 + 20 + 10 - 2 attach) s x (40 + 30) pods / 4 h x 24 h
    assert " 24360 " in create
    assert any(r.startswith("retire") and "advisor-stale" in r for r in rows)
    assert "team-flink" not in out  # a user's cache is supply, never planned
    assert total.startswith("expected saving 24360 pull-s/day with 20 GiB")


def test_yaml_is_imagecache_objects_the_crd_accepts(
        files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _advise(capsys, "--demand", files[0], "--caches", files[1], "-o", "yaml")
    assert code == 0
    assert "# retire: kubectl delete imagecache advisor-stale" in out
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert len(docs) == 1
    [obj] = docs
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(obj, schema)
    assert obj["kind"] == "ImageCache" and obj["apiVersion"] == "eci.alibabacloud.com/v1"
    assert obj["metadata"]["labels"] == {ADVISOR_OWNED_LABEL: "true"}
    assert obj["metadata"]["name"].startswith("advisor-")
    assert obj["spec"]["imageCacheSize"] == 20
    # What advise reads back from the object is the cache it planned, owned by the advisor.
    back = existing_from_object(obj)
    assert back is not None and back.advisor_owned
    assert set(back.images) == set(obj["spec"]["images"])


def test_a_budget_of_no_caches_retires_every_advisor_cache(
        files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _advise(capsys, "--demand", files[0], "--caches", files[1],
                           "--max-caches", "0")
    assert code == 0
    rows = out.splitlines()[1:-1]
    assert [r.split()[:2] for r in rows] == [["retire", "advisor-stale"]]


@pytest.mark.parametrize(("content", "message"), [
    ("- images: []\n  pods: 1\n  window_hours: 1\n", "image set #1: images must be"),
    ("- images: [a:1]\n  pods: 1\n  window_hours: 1\n  colour: red\n", "unknown field(s)"),
    ("- images: [a:1]\n  pods: 1\n  window_hours: 0\n", "window_hours > 0"),
    ("{: :", "not JSON or YAML"),
    ("just text", "expected a list of image sets"),
])
def test_bad_demand_is_refused_naming_the_file_and_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    code, out, err = _advise(capsys, "--demand", str(bad))
    assert code == 2 and out == ""
    assert str(bad) in err and message in err


def test_bad_caches_and_missing_demand_are_refused(
        files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "caches.yaml"
    bad.write_text("kind: ImageCache\nmetadata: {name: x}\nspec: {images: [a:1], "
                   "imageCacheSize: big}\n")
    code, _, err = _advise(capsys, "--demand", files[0], "--caches", str(bad))
    assert code == 2 and "ImageCache x: spec.imageCacheSize 'big'" in err
    code, _, err = _advise(capsys)
    assert code == 2 and "no demand" in err
    code, _, err = _advise(capsys, "--demand", str(tmp_path / "absent.yaml"))
    assert code == 2 and "absent.yaml: cannot read" in err


def test_failed_or_deleting_caches_are_not_supply() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "c"}, "spec": {"images": ["a:1"]}}
    assert existing_from_object(obj) is not None
    assert existing_from_object({**obj, "status": {"phase": "Failed"}}) is None
    deleting = {"metadata": {"name": "c", "deletionTimestamp": "2026-11-01T00:00:00Z"},
                "spec": {"images": ["a:1"]}}
    assert existing_from_object(deleting) is None


def test_object_annotations_say_why_the_cache_exists() -> None:
    pc = PlannedCache("advisor-x", Action.CREATE, ("docker.io/library/a:1",), 20, 1234.4, 20.0,
                      tuple(f"ns/Job/j{i}" for i in range(12)))
    ann = imagecache_object(pc)["metadata"]["annotations"]
    assert ann["eci.vk-eci.io/advisor-saved-seconds-per-day"] == "1234"
    assert ann["eci.vk-eci.io/advisor-workloads"].split(",") == [f"ns/Job/j{i}"
                                                                 for i in range(10)]


def test_the_node_advisors_own_record_is_read_as_demand(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The ConfigMap's demand.json as the node writes it (kubectl get cm ... > demand.json).
    now = 1_800_000_000.0
    record = DemandRecord(window_hours=6.0, since=now - 6 * 3600)
    images = ["registry.example.com/ci/base:1", "registry.example.com/ci/tools:2"]
    for k in range(60):
        record.add_pod(images, now - k * 300, workload="ci/Job/build")
    for img in images:
        record.add_pull(img, 40.0, now - 100)
    path = tmp_path / "demand.json"
    path.write_text(persist.encode(record, now))
    code, out, _ = _advise(capsys, "--demand", str(path), "--now", str(now))
    assert code == 0
    [row] = [r for r in out.splitlines() if r.startswith("create")]
    assert "2: registry.example.com/ci/base:1, registry.example.com/ci/tools:2" in row
    assert row.rstrip().endswith("ci/Job/build")
    path.write_text('{"version": 99}')
    code, _, err = _advise(capsys, "--demand", str(path))
    assert code == 2 and "demand.json: format version 99" in err


def test_with_node_its_advisor_caches_are_its_own_others_are_supply(
        files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    caches = tmp_path / "caches.yaml"
    caches.write_text(CACHES + f"""---
apiVersion: eci.alibabacloud.com/v1
kind: ImageCache
metadata:
  name: advisor-of-node-a
  labels: {{{ADVISOR_OWNED_LABEL}: node-a}}
spec: {{images: [unused:1]}}
""")
    code, out, _ = _advise(capsys, "--demand", files[0], "--caches", str(caches))
    assert code == 0 and "advisor-of-node-a" not in out  # another advisor's: supply only
    code, out, _ = _advise(capsys, "--demand", files[0], "--caches", str(caches),
                           "--node", "node-a")
    assert code == 0
    rows = [r.split()[:2] for r in out.splitlines()[1:-1]]
    assert ["retire", "advisor-of-node-a"] in rows
    assert ["retire", "advisor-stale"] not in rows  # labelled "true": not node-a's
    code, out, _ = _advise(capsys, "--demand", files[0], "--caches", str(caches),
                           "--node", "node-a", "-o", "yaml")
    [obj] = [d for d in yaml.safe_load_all(out) if d]
    assert obj["metadata"]["labels"] == {ADVISOR_OWNED_LABEL: "node-a"}
