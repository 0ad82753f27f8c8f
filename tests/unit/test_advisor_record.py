"""The advisor's demand record: decayed pods per image set, pull seconds per image, bounds,
merging a stored record, and its JSON form (``vk_eci.advisor.persist``)."""

from __future__ import annotations

import json
import math

import pytest

from vk_eci.advisor.persist import KEY, MAX_BYTES, StateError, decode, encode
from vk_eci.advisor.record import PULL_SAMPLES, DemandRecord

T0 = 1_800_000_000.0
HOUR = 3600.0
A, B, C = "docker.io/library/a:1", "docker.io/library/b:1", "docker.io/library/c:1"


def test_a_steady_rate_reads_as_that_rate_from_the_start() -> None:
    rec = DemandRecord(window_hours=6)
    for i in range(120):  # 12 pods per hour for 10 hours
        rec.add_pod([A, B], T0 + i * 300)
    now = T0 + 120 * 300
    [d] = rec.demand(now)
    assert d.images == (A, B)
    assert d.pods_per_hour == pytest.approx(12, rel=0.05)
    # Young: after one hour the effective window is about one hour, not six.
    young = DemandRecord(window_hours=6)
    for i in range(12):
        young.add_pod([A], T0 + i * 300)
    [d] = young.demand(T0 + HOUR)
    assert d.window_hours == pytest.approx(6 * (1 - math.exp(-1 / 6)))
    assert d.pods_per_hour == pytest.approx(12, rel=0.1)


def test_old_demand_fades() -> None:
    rec = DemandRecord(window_hours=1)
    for i in range(10):
        rec.add_pod([A], T0 + i)
    fresh = rec.demand(T0 + 10)[0].pods
    later = rec.demand(T0 + 10 + 3 * HOUR)[0].pods
    assert later == pytest.approx(fresh * math.exp(-3), rel=1e-3)


def test_a_pod_set_is_distinct_and_sorted_and_hits_are_counted() -> None:
    rec = DemandRecord()
    assert rec.add_pod([B, A, B], T0, hit=True) == (A, B)
    rec.add_pod([A, B], T0)
    rec_set = rec.sets[(A, B)]
    assert rec_set.pods == pytest.approx(2)
    assert rec_set.hits == pytest.approx(1)
    assert rec.add_pod([], T0) == ()
    assert len(rec.sets) == 1


def test_pull_seconds_are_a_running_mean_per_image_with_size() -> None:
    rec = DemandRecord()
    rec.add_pull(A, 10, T0)
    rec.add_pull(A, 20, T0, size_bytes=3 << 30)
    rec.add_pull(A, -1, T0)  # nonsense is not a pull
    rec.add_pull(A, math.inf, T0)
    assert rec.mean_pull_seconds(A) == pytest.approx(15)
    assert rec.images[A].size_gib == pytest.approx(3)
    for _ in range(10 * PULL_SAMPLES):
        rec.add_pull(A, 50, T0)
    assert rec.mean_pull_seconds(A) == pytest.approx(50, rel=1e-3)  # follows a slower registry
    rec.add_pod([A, B], T0)
    [d] = rec.demand(T0 + 1)
    assert d.pull_seconds == {A: pytest.approx(50, rel=1e-3)}  # B never seen pulled
    assert d.image_gib == {A: pytest.approx(3)}


def test_sets_are_bounded_least_demanded_forgotten_first() -> None:
    rec = DemandRecord(max_sets=3)
    for _ in range(5):
        rec.add_pod([A], T0)
    for _ in range(3):
        rec.add_pod([B], T0)
    rec.add_pod([C], T0)
    rec.add_pod([A, B], T0 + 1)  # full: C (one pod) goes
    assert set(rec.sets) == {(A,), (B,), (A, B)}
    # Image statistics stay bounded too (images of no remembered set, oldest first): within
    # twice the bound between the amortised trims, within the bound after one.
    for i in range(100):
        rec.add_pull(f"docker.io/library/x{i}:1", 1.0, T0 + i)
    assert len(rec.images) <= 4 * rec.max_sets + 2
    assert "docker.io/library/x99:1" in rec.images
    rec.drop_least(T0, 0)
    assert len([i for i in rec.images if i not in {A, B}]) <= rec.max_sets
    assert "docker.io/library/x99:1" in rec.images


def test_workloads_most_recent_first_and_capped() -> None:
    rec = DemandRecord(max_workloads=2)
    for w in ("ns/Deployment/a", "ns/Deployment/b", "ns/Job/c", "ns/Deployment/a"):
        rec.add_pod([A], T0, workload=w)
    assert rec.sets[(A,)].workloads == ["ns/Deployment/a", "ns/Job/c"]


def test_merge_adds_decayed_counts_and_pulls() -> None:
    before = DemandRecord(window_hours=1, since=T0)
    before.add_pod([A], T0, workload="ns/Job/x")
    before.add_pull(A, 10, T0)
    now = DemandRecord(window_hours=1)
    now.add_pod([A], T0 + HOUR, workload="ns/Job/y")
    now.add_pull(A, 30, T0 + HOUR)
    now.merge(before)
    assert now.since == T0
    rec = now.sets[(A,)]
    assert rec.pods == pytest.approx(1 + math.exp(-1))
    assert rec.workloads == ["ns/Job/y", "ns/Job/x"]
    assert now.mean_pull_seconds(A) == pytest.approx(20)


def test_json_round_trip() -> None:
    rec = DemandRecord(window_hours=2)
    rec.add_pod([A, B], T0, workload="ns/Deployment/web", hit=True)
    rec.add_pod([C], T0 + 5)
    rec.add_pull(A, 12.5, T0, size_bytes=1 << 29)
    text = encode(rec, T0 + 10)
    body = json.loads(text)
    assert body["version"] == 1 and KEY == "demand.json"
    back = decode(text, window_hours=2)
    assert back.demand(T0 + 100) == rec.demand(T0 + 100)
    assert back.since == T0
    assert back.changes == 0


def test_json_is_bounded_keeping_the_most_demanded() -> None:
    rec = DemandRecord(max_sets=5000)
    for i in range(3000):
        images = [f"registry.example.com/team-{i}/app-{j}:{'v' * 40}{i}" for j in range(5)]
        rec.add_pod(images, T0 + i)
        rec.add_pull(images[0], 3.0, T0 + i)
    rec.add_pod([A], T0)
    rec.add_pod([A], T0)
    text = encode(rec, T0 + 3000, max_bytes=50_000)
    assert 45_000 < len(text.encode()) <= 50_000  # filled, not halved
    stored = decode(text, max_sets=5000)
    assert (A,) in stored.sets  # the most demanded set stays
    assert len(rec.sets) == 3001  # the record itself keeps everything
    # Every stored set's images are stored with it.
    assert all(i in stored.images for key in stored.sets for i in key)
    assert len(encode(DemandRecord(), T0).encode()) < MAX_BYTES


def test_a_copy_is_independent() -> None:
    rec = DemandRecord()
    rec.add_pod([A], T0, workload="ns/Job/x")
    rec.add_pull(A, 5, T0)
    twin = rec.copy()
    rec.add_pod([A], T0, workload="ns/Job/y")
    rec.add_pull(A, 15, T0)
    assert twin.sets[(A,)].pods == 1 and twin.sets[(A,)].workloads == ["ns/Job/x"]
    assert twin.mean_pull_seconds(A) == 5 and twin.changes < rec.changes


@pytest.mark.parametrize(("text", "why"), [
    ("{", "not JSON"),
    ("[]", "not a JSON object"),
    ('{"version": 2}', "format version 2"),
    ('{"version": 1, "images": [["a", 1, 1, null]]}', r"images\[0\]"),
    ('{"version": 1, "images": [], "sets": [[[0], 1, 0, 1, 1, []]]}', r"sets\[0\]"),
    ('{"version": 1, "since": "yesterday"}', "since"),
])
def test_a_bad_record_is_an_error_naming_where(text: str, why: str) -> None:
    with pytest.raises(StateError, match=why):
        decode(text)
