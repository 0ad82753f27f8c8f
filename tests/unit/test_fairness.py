"""Fair across tenants (docs/SECURITY.md): the node's cache-building limit survives restarts,
the advisor weighs demand per namespace and clamps pull seconds by image size, and its Node
events name no tenant's workloads or images."""

from __future__ import annotations

from tests.unit.cache_fakes import NOW, cache_model
from tests.unit.test_cloud_cache_report import SETTINGS, FakeMaker
from vk_eci.advisor.candidates import demands, max_pull_seconds
from vk_eci.advisor.model import Action, Budget, ImageSetDemand, PlannedCache
from vk_eci.advisor.planner import plan
from vk_eci.cloud.caches.autocreate import CacheBuilder, built_tags
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cluster.advising.apply import summary


async def test_the_build_limit_counts_caches_listed_with_our_tags_after_a_restart() -> None:
    """Three restarts used to make three times the limit: a fresh process counts what ECI lists
    with this cluster's node-built tags (limit 2 here)."""
    ours = built_tags("c1")
    maker = FakeMaker(cache_model("imc-old1", ["docker.io/library/a:1"], name="x1", tags=ours),
                      cache_model("imc-old2", ["docker.io/library/b:1"], name="x2", tags=ours),
                      cache_model("imc-other", ["docker.io/library/c:1"], name="x3",
                                  tags=built_tags("another-cluster")),
                      cache_model("imc-failed", ["docker.io/library/d:1"], name="x4",
                                  tags=ours, status="Failed"))
    catalog = CacheCatalog(maker, clock=lambda: NOW)
    await catalog.sync()
    builder = CacheBuilder(maker, catalog, SETTINGS)
    assert await builder.build(["docker.io/library/redis:7"]) is None
    assert maker.created == []
    assert builder.built() == 2
    catalog.drop("imc-old1")  # one expired and went away: room for one more
    assert await builder.build(["docker.io/library/nginx:1"]) == "imc-built1"


def _demand(image: str, namespace: str, pods: float, pull: float, gib: float,
            ) -> ImageSetDemand:
    return ImageSetDemand((image,), pods=pods, window_hours=24.0, pull_seconds={image: pull},
                          image_gib={image: gib},
                          workloads=(f"{namespace}/Deployment/{image.split(':')[0]}",))


def test_a_slow_registry_cannot_inflate_savings_beyond_size_over_bandwidth() -> None:
    budget = Budget()
    [d] = demands([_demand("slow:1", "team-x", 24, pull=3600.0, gib=0.2)], budget)
    assert d.pull_s["docker.io/library/slow:1"] == max_pull_seconds(0.2, budget)
    assert max_pull_seconds(0.2, budget) == budget.pull_allowance_seconds + 0.2 * 1024 / 10.0
    [fast] = demands([_demand("ok:1", "team-x", 24, pull=15.0, gib=0.2)], budget)
    assert fast.pull_s["docker.io/library/ok:1"] == 15.0  # plausible figures stand


def test_no_namespace_takes_more_than_its_share_of_the_budget() -> None:
    """Before: the tenant with the slow registry got every cache and the teams none."""
    # One image per cache, so that each cache serves one tenant.
    budget = Budget(max_caches=4, max_gib=2048, cost_per_gib_day=0.01, max_images=1)
    greedy = [_demand(f"greedy{n}:1", "greedy", 240, pull=3600.0, gib=2.0) for n in range(6)]
    teams = [_demand(f"team{n}:1", f"team-{n}", 24, pull=30.0, gib=1.0) for n in range(3)]
    p = plan([*greedy, *teams], [], budget, now=NOW)
    made = [c for c in p.caches if c.action is Action.CREATE]
    assert len(made) == 4
    by_ns = [c for c in made if any(w.startswith("greedy/") for w in c.workloads)]
    assert len(by_ns) == 2  # 0.5 of 4
    single = plan(greedy, [], budget, now=NOW)  # one tenant alone has the whole budget
    assert len([c for c in single.caches if c.action is Action.CREATE]) == 4


def test_node_events_carry_counts_not_other_namespaces_names() -> None:
    cache = PlannedCache("advisor-abc", Action.CREATE, ("registry.corp.example/a/billing:v7",),
                         20, 100.0, 1.0, ("team-a/Deployment/billing", "team-b/Job/etl"))
    text = summary(cache)
    assert "2 workload(s) in 2 namespace(s)" in text
    for name in ("team-a", "team-b", "billing", "etl", "registry.corp.example"):
        assert name not in text
