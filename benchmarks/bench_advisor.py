"""Which caches should exist? The cache advisor against ECI's auto-create (both rules).

A synthetic but realistic trace of pod starts is replayed against the ECI emulator through the
official SDK (``EciClient``), on the emulator's manual clock at time scale 1, so every figure is
in ECI seconds and hours of ECI time replay in seconds of wall time (the emulator's and the
client's rate limits are off: they are about real request rates, which a replay compresses).

The trace (seeded, ``advisor_trace.py``): CI runner families, Flink jobs and batch Jobs.
Policies, each on a fresh emulator:

- **none**: no cache;
- **auto-create (miss)** and **auto-create (partial)**: every pod sends
  ``AutoMatchImageCache``; ECI matches server-side and auto-creates a 30 GiB cache of that pod's
  images (one per such pod) when no cache holds any of its images (``miss``: ECI's English
  overview) or when none holds all of them (``partial``: its Chinese ImageCache page). ECI's
  documents disagree, so both are the emulator's ``auto_create`` model (docs/EMULATOR.md) and
  both are measured: the advisor should win against each;
- **advisor (apply)**: every ``--replan`` min the planner (``vk_eci.advisor.planner.plan``) runs
  on the demand observed so far (pods per image set over the last ``--window`` h, pull seconds
  from ECI's "Pulled ... in Ns" events read with ``DescribeContainerGroups``) and its plan is
  applied with the SDK (``CreateImageCache`` / ``UpdateImageCache`` / ``DeleteImageCache``).
  This drives the SDK and the planner directly, not the node's control-plane loop (the
  integration tests cover that): each pod gets the cache the node's ranking puts first among
  the Ready caches of a listing at most 60 s old (``matcher.CacheIndex``, as the node), sent as
  ``ImageSnapshotId``, and no cache (and no ``AutoMatchImageCache``) when none matches;
- **hindsight plan**: the same planner and budget given the whole trace's demand, its caches
  built before the trace starts and never changed; pods choose as for the advisor. It is this
  planner with foresight, not an optimum: another policy can save more than it.

Time to Running is ECI's (the emulator's create -> Running of each group). Saved = the sum over
pods of (time to Running without a cache - with the policy). GiB·days: every cache's size times
the part of the trace it existed (built, building or failed: ECI bills it all).

``--seeds 1-10`` adds a summary over those seeds (mean and worst of each comparison).

Usage: python benchmarks/bench_advisor.py [--hours 6] [--seed 17] [--seeds 1-10]. Writes
benchmarks/results/bench_advisor.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alibabacloud_eci20180808 import models as eci

from benchmarks.advisor_trace import PodStart, make_trace
from benchmarks.report import Report
from matcher import CacheIndex, normalize_image
from vk_eci.advisor.model import Action, Budget, ExistingCache, ImageSetDemand, Plan
from vk_eci.advisor.observe import go_duration
from vk_eci.advisor.planner import plan
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.ratelimit import DEFAULT_LIMITS_PER_MINUTE
from vk_eci.emulator import EciModel, Emulator, ManualClock

REGION = "cn-hangzhou"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the trace's start
LISTING_MAX_AGE_S = 60.0
# The kubelet's text: "in 1m4.223s (1m4.223s including waiting)" (a Go duration).
_PULLED = re.compile(r'Successfully pulled image "([^"]+)" in (\S+)')


@dataclass
class Run:
    name: str
    starts: list[float] = field(default_factory=list)
    full_hits: int = 0
    partial_hits: int = 0
    gib_days: float = 0.0
    caches_made: int = 0
    plans: int = 0
    pulls: dict[str, float] = field(default_factory=dict)  # mean pull s per image, from events


def _ts(text: str | None) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() if text else 0.0


class World:
    """One fresh emulator and the SDK client that drives it."""

    def __init__(self, model: EciModel | None = None) -> None:
        self.clock = ManualClock(T0 - 3 * 3600)
        self.emu = Emulator(access_key_id="AK", access_key_secret="SK", region=REGION,
                            time_scale=1.0, clock=self.clock, rate_limits={}, model=model)
        self.client: EciClient
        self.deleted: list[tuple[float, float, int]] = []  # created, deleted, GiB

    async def __aenter__(self) -> World:
        await self.emu.__aenter__()
        self.client = EciClient(EciClientConfig(
            region_id=REGION, credential=AccessKey("AK", "SK"), endpoint=self.emu.endpoint,
            protocol="http", default_rate_limit=None,
            rate_limits={action: 0 for action in DEFAULT_LIMITS_PER_MINUTE}))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.emu.__aexit__(*exc)

    async def create_pod(self, i: int, pod: PodStart, snapshot: str | None,
                         auto_match: bool) -> str:
        req = eci.CreateContainerGroupRequest(
            region_id=REGION, security_group_id="sg-bench", v_switch_id="vsw-bench",
            container_group_name=f"pod-{i}", restart_policy="Never", cpu=2.0, memory=4.0,
            client_token=f"pod-{i}", image_snapshot_id=snapshot,
            auto_match_image_cache=True if auto_match else None,
            container=[eci.CreateContainerGroupRequestContainer(
                name=f"c{k}", image=img, image_pull_policy="IfNotPresent")
                for k, img in enumerate(pod.images)])
        return await self.client.create_container_group(req)

    async def create_cache(self, name: str, images: Sequence[str], size: int) -> str:
        return await self.client.create_image_cache(eci.CreateImageCacheRequest(
            region_id=REGION, security_group_id="sg-bench", v_switch_id="vsw-bench",
            image_cache_name=name, image=list(images), image_cache_size=size))

    async def caches(self) -> list[Any]:
        return await self.client.describe_image_caches()

    async def delete_cache(self, cache: Any) -> None:
        await self.client.delete_image_cache(cache.image_cache_id)
        self.deleted.append((_ts(cache.creation_time), self.clock.now(),
                             int(cache.image_cache_size or 20)))

    async def gib_days(self, start: float, end: float) -> tuple[float, int]:
        spans = [(_ts(c.creation_time), end, int(c.image_cache_size or 20))
                 for c in await self.caches()] + self.deleted
        total = sum(max(0.0, min(e, end) - max(s, start)) * gib for s, e, gib in spans)
        return total / 86_400.0, len(spans)


class Chooser:
    """The node's ranking over the Ready caches of a listing at most a minute old."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.listed_at = -math.inf
        self.index = CacheIndex()
        self.ids: dict[str, str] = {}

    async def refresh(self, force: bool = False) -> list[Any]:
        now = self.world.clock.now()
        if not force and now - self.listed_at < LISTING_MAX_AGE_S:
            return []
        listing = await self.world.caches()
        self.listed_at, self.index = now, CacheIndex()
        for c in listing:
            if c.status == "Ready" and c.images:
                self.index.upsert(c.image_cache_id, c.images,
                                  size_gib=int(c.image_cache_size or 20),
                                  created_at=_ts(c.creation_time))
        return listing

    async def choose(self, images: Sequence[str]) -> str | None:
        await self.refresh()
        m = self.index.best(images, now=self.world.clock.now())
        return None if m is None else m.cache_id


class Observer:
    """Demand as the node would observe it: pod starts per image set, ECI's pull events."""

    def __init__(self, window_h: float) -> None:
        self.window_h = window_h
        self.starts: list[tuple[float, tuple[str, ...], str]] = []
        self.pending: list[str] = []
        self.pulls: dict[str, list[float]] = {}

    def started(self, at: float, pod: PodStart, group_id: str) -> None:
        norm = tuple(sorted({normalize_image(i) for i in pod.images}))
        self.starts.append((at, norm, pod.workload))
        self.pending.append(group_id)

    async def read_events(self, client: EciClient) -> None:
        groups = await client.describe_container_groups(ids=self.pending, with_event=True)
        self.pending = []
        for g in groups:
            for ev in g.events or []:
                m = _PULLED.match(ev.message or "")
                seconds = go_duration(m[2]) if m else None
                if m and seconds is not None:
                    self.pulls.setdefault(normalize_image(m[1]), []).append(seconds)

    def demand(self, now: float) -> list[ImageSetDemand]:
        since = now - self.window_h * 3600
        window_h = min(self.window_h, (now - self.starts[0][0]) / 3600) if self.starts else 0
        sets: dict[tuple[str, ...], list[str]] = {}
        for at, imgs, workload in self.starts:
            if at >= since:
                sets.setdefault(imgs, []).append(workload)
        pull = {i: statistics.fmean(v) for i, v in self.pulls.items()}
        return [ImageSetDemand(imgs, len(w), max(window_h, 1 / 60),
                               {i: pull[i] for i in imgs if i in pull},
                               workloads=tuple(sorted(set(w))))
                for imgs, w in sets.items()]


async def apply_plan(world: World, p: Plan, listing: Sequence[Any]) -> None:
    by_name = {c.image_cache_name: c for c in listing}
    for c in p.caches:
        have = by_name.get(c.name)
        if c.action is Action.CREATE:
            await world.create_cache(c.name, c.images, c.size_gib)
        elif c.action is Action.UPDATE and have is not None and have.status == "Ready":
            # ECI updates only a Ready cache (re-pulling just the new images); one still
            # building is updated at a later re-plan. A cache disk only grows.
            size = c.size_gib if c.size_gib > int(have.image_cache_size or 20) else None
            await world.client.update_image_cache(eci.UpdateImageCacheRequest(
                region_id=REGION, image_cache_id=have.image_cache_id, image=list(c.images),
                image_cache_size=size))
        elif c.action is Action.RETIRE and have is not None:
            await world.delete_cache(have)


def existing(listing: Sequence[Any]) -> list[ExistingCache]:
    return [ExistingCache(c.image_cache_name, tuple(c.images or ()),
                          int(c.image_cache_size or 20), _ts(c.creation_time), True)
            for c in listing if c.image_cache_name.startswith("advisor-")
            and c.status not in ("Failed", "UpdateFailed")]


async def replay(name: str, trace: Sequence[PodStart], hours: float, *, budget: Budget,
                 auto_match: bool = False, choose: bool = False, replan_s: float = 0.0,
                 window_h: float = 3.0, oracle: Plan | None = None,
                 model: EciModel | None = None) -> Run:
    run = Run(name)
    end = T0 + hours * 3600
    async with World(model) as world:
        chooser = Chooser(world)
        observer = Observer(window_h)
        if oracle is not None:
            for c in oracle.caches:
                await world.create_cache(c.name, c.images, c.size_gib)
            run.plans = 1
        world.clock.set(T0)
        next_plan = T0 + replan_s if replan_s else math.inf
        groups: list[str] = []
        for i, pod in enumerate(trace):
            at = T0 + pod.at
            while next_plan <= at:
                world.clock.set(next_plan)
                await observer.read_events(world.client)
                listing = await chooser.refresh(force=True)
                p = plan(observer.demand(next_plan), existing(listing), budget, now=next_plan)
                await apply_plan(world, p, listing)
                await chooser.refresh(force=True)
                run.plans += 1
                next_plan += replan_s
            world.clock.set(at)
            snapshot = await chooser.choose(pod.images) if choose else None
            gid = await world.create_pod(i, pod, snapshot, auto_match)
            groups.append(gid)
            observer.started(at, pod, gid)
            g = world.emu.state.groups[gid]  # which cache ECI started it from, and how much
            if g.cache_id is not None:
                held = set(world.emu.state.caches.caches[g.cache_id].norm_images)
                if {c.raw["_norm"] for c in [*g.init_containers, *g.containers]} <= held:
                    run.full_hits += 1
                else:
                    run.partial_hits += 1
        world.clock.set(end + 3600)  # every pod has reached Running
        await observer.read_events(world.client)
        run.pulls = {i: statistics.fmean(v) for i, v in observer.pulls.items()}
        for gid in groups:
            g = world.emu.state.groups[gid]
            run.starts.append(g.running_at - g.created)
        run.gib_days, run.caches_made = await world.gib_days(T0, end)
    return run


def true_demand(trace: Sequence[PodStart], hours: float,
                pulls: dict[str, float]) -> list[ImageSetDemand]:
    """Every pod of the trace, per image set, with the pull seconds ECI's events showed."""
    sets: dict[tuple[str, ...], list[str]] = {}
    for pod in trace:
        sets.setdefault(tuple(sorted({normalize_image(i) for i in pod.images})),
                        []).append(pod.workload)
    return [ImageSetDemand(imgs, len(w), hours, {i: pulls[i] for i in imgs if i in pulls},
                           workloads=tuple(sorted(set(w)))) for imgs, w in sets.items()]


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _saved(base: Run, run: Run) -> float:
    return sum(a - b for a, b in zip(base.starts, run.starts, strict=True))


def _row(r: Run, base: Run, hindsight: Run) -> list[str]:
    n = len(r.starts)
    saved, best = _saved(base, r), _saved(base, hindsight)
    return [r.name, f"{(r.full_hits + r.partial_hits) / n:.1%}", f"{r.full_hits / n:.1%}",
            f"{statistics.fmean(r.starts):.1f}", f"{_p95(r.starts):.1f}", f"{r.gib_days:.1f}",
            str(r.caches_made), f"{saved / 3600:.2f}", f"{saved / best:.1%}" if best > 0 else "-"]


HEADS = ["policy", "hit ratio (any cache)", "full hits", "mean start s", "p95 start s",
         "cache GiB·days", "caches made", "saved pod-h", "of the hindsight plan's saving"]
AUTO_RULES = ("miss", "partial")   # the emulator's auto_create model (docs/EMULATOR.md)


@dataclass
class SeedRuns:
    """One trace under every policy at the main budget."""

    none: Run
    autos: dict[str, Run]
    advisor: Run
    hindsight: Run

    def rows(self) -> list[Run]:
        return [self.none, *self.autos.values(), self.advisor, self.hindsight]


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=6.0, help="ECI hours of trace")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--seeds", default="", help="also summarise these seeds, e.g. 1-10")
    ap.add_argument("--replan", type=float, default=15.0, help="advisor re-plan period, min")
    ap.add_argument("--window", type=float, default=3.0, help="advisor demand window, h")
    ap.add_argument("--max-caches", type=int, default=10)
    ap.add_argument("--max-gib", type=int, default=60)
    ap.add_argument("--cost-per-gib-day", type=float, default=200.0)
    ap.add_argument("--sweep", default="40,100,200", help="other --max-gib budgets to show")
    args = ap.parse_args()
    rep = Report("bench_advisor", __doc__)
    wall = time.perf_counter()

    def budget(gib: int) -> Budget:
        return Budget(max_caches=args.max_caches, max_gib=gib,
                      cost_per_gib_day=args.cost_per_gib_day)

    async def pair(trace: list[PodStart], base: Run, gib: int) -> tuple[Run, Run]:
        advisor = await replay("advisor (apply)", trace, args.hours, budget=budget(gib),
                               choose=True, replan_s=args.replan * 60, window_h=args.window)
        best = plan(true_demand(trace, args.hours, base.pulls), [], budget(gib),
                    now=T0 - 3 * 3600)
        hindsight = await replay("hindsight plan", trace, args.hours, budget=budget(gib),
                                 choose=True, oracle=best)
        return advisor, hindsight

    async def one_seed(trace: list[PodStart]) -> SeedRuns:
        none = await replay("none", trace, args.hours, budget=budget(args.max_gib))
        autos = {rule: await replay(f"auto-create ({rule})", trace, args.hours,
                                    budget=budget(args.max_gib), auto_match=True,
                                    model=EciModel(auto_create=rule)) for rule in AUTO_RULES}
        advisor, hindsight = await pair(trace, none, args.max_gib)
        return SeedRuns(none, autos, advisor, hindsight)

    trace = make_trace(args.seed, args.hours)

    async def go() -> tuple[SeedRuns, dict[int, tuple[Run, Run]], dict[int, SeedRuns]]:
        main_runs = await one_seed(trace)
        sweep = {g: await pair(trace, main_runs.none, g)
                 for g in map(int, filter(None, args.sweep.split(",")))}
        others = {seed: await one_seed(make_trace(seed, args.hours))
                  for seed in _seeds(args.seeds)}
        return main_runs, sweep, others

    main_runs, sweep, others = asyncio.run(go())
    none, adv, hindsight = main_runs.none, main_runs.advisor, main_runs.hindsight
    families = len({p.workload for p in trace})
    sets = len({tuple(sorted(p.images)) for p in trace})
    rep.table(HEADS, [_row(r, none, hindsight) for r in main_runs.rows()],
              title=f"{len(trace)} pods over {args.hours:g} h of ECI time ({families} "
                    f"workloads, {sets} distinct image sets), seed {args.seed}. Advisor: the "
                    f"planner + SDK driven directly (not the node's loop), re-planning every "
                    f"{args.replan:g} min on the last {args.window:g} h; advisor and hindsight "
                    f"plan budget {args.max_gib} GiB / {args.max_caches} caches, cost "
                    f"{args.cost_per_gib_day:g} pull-s/day per GiB·day. Auto-create rows: the "
                    f"emulator's two auto_create models")
    _sweep_table(rep, none, main_runs.autos, {**sweep, args.max_gib: (adv, hindsight)})
    if others:
        _seed_table(rep, others)
    rep.text(f"The hindsight plan is the same planner given the whole trace's demand (pull "
             f"seconds as ECI's events showed them in the no-cache run), its caches built "
             f"before the trace starts: this planner with foresight, not an optimum or an "
             f"upper bound. Wall time {time.perf_counter() - wall:.0f} s; the advisor planned "
             f"{adv.plans} times in the main run.")
    for rule, auto in main_runs.autos.items():
        rep.goal(f"advisor mean start vs auto-create ({rule})", statistics.fmean(adv.starts),
                 "<=", round(statistics.fmean(auto.starts), 1), unit="s")
        rep.goal(f"advisor GiB·days / auto-create ({rule})'s",
                 adv.gib_days / auto.gib_days * 100, "<=", 50, unit="%")
    rep.goal("advisor saving / the hindsight plan's",
             _saved(none, adv) / _saved(none, hindsight) * 100, ">=", 80, unit="%")
    rep.finish()


def _sweep_table(rep: Report, none: Run, autos: dict[str, Run],
                 pairs: dict[int, tuple[Run, Run]]) -> None:
    rows = []
    for gib, (a, o) in sorted(pairs.items()):
        rows.append([str(gib), f"{statistics.fmean(a.starts):.1f}", f"{a.gib_days:.1f}",
                     *(f"{a.gib_days / auto.gib_days:.0%}" for auto in autos.values()),
                     f"{_saved(none, a) / 3600:.2f}", f"{statistics.fmean(o.starts):.1f}",
                     f"{o.gib_days:.1f}", f"{_saved(none, o) / 3600:.2f}",
                     f"{_saved(none, a) / _saved(none, o):.1%}"])
    autos_text = "; ".join(f"auto-create ({rule}): mean start "
                           f"{statistics.fmean(r.starts):.1f} s, {r.gib_days:.1f} GiB·days"
                           for rule, r in autos.items())
    rep.table(["budget GiB", "advisor mean start s", "advisor GiB·days",
               *(f"of auto-create ({rule})'s" for rule in autos), "advisor saved pod-h",
               "hindsight mean start s", "hindsight GiB·days", "hindsight saved pod-h",
               "advisor of hindsight"], rows, title=f"Budget sweep (same trace; {autos_text})")


def _seed_table(rep: Report, seeds: dict[int, SeedRuns]) -> None:
    """Per comparison: the mean over the seeds and the worst seed (with its number)."""
    def summary(name: str, values: dict[int, float], worst_is_max: bool, unit: str) -> list[str]:
        worst = (max if worst_is_max else min)(values, key=lambda k: values[k])
        return [name, f"{statistics.fmean(values.values()):.1f}{unit}",
                f"{values[worst]:.1f}{unit} (seed {worst})"]

    rows = []
    for rule in AUTO_RULES:
        rows.append(summary(f"advisor mean start - auto-create ({rule})'s, s", {
            k: statistics.fmean(r.advisor.starts) - statistics.fmean(r.autos[rule].starts)
            for k, r in seeds.items()}, True, ""))
        rows.append(summary(f"advisor GiB·days / auto-create ({rule})'s", {
            k: r.advisor.gib_days / r.autos[rule].gib_days * 100 for k, r in seeds.items()},
            True, "%"))
    rows.append(summary("advisor saving / the hindsight plan's", {
        k: _saved(r.none, r.advisor) / _saved(r.none, r.hindsight) * 100
        for k, r in seeds.items()}, False, "%"))
    rep.table(["comparison", "mean over seeds", "worst seed"], rows,
              title=f"Seeds {min(seeds)}-{max(seeds)} ({len(seeds)} traces), main budget")


if __name__ == "__main__":
    main()
