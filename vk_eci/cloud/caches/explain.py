"""Why a pod would get the image cache it gets: the ranking explained (``vk-eci match``).

:func:`explain` runs the node's own decision (:func:`vk_eci.cloud.caches.choice.decide_for_pod`)
against a catalog and adds what a person checking a manifest before a deploy wants to know: the
top candidates with the reason each one ranks where it does (the ranking: overlap, then size, then
creation time, then id), and what the pod's constraint annotations changed compared with a plain
automatic match.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from matcher import Match
from vk_eci.cloud.caches.annotations import (
    MATCH_COUNT_KEY,
    PERFECT_MATCH_KEY,
    parse_cache_request,
)
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.choice import decide_for_pod, pod_images
from vk_eci.cloud.caches.decision import CacheDecision
from vk_eci.cloud.caches.pull_policy import containers_of
from vk_eci.cloud.placement.values import annotations_of

TOP = 3


@dataclass(frozen=True)
class Explanation:
    """What ``vk-eci match`` prints for one pod (template)."""

    decision: CacheDecision
    images: tuple[str, ...]
    ranked: tuple[tuple[Match, str], ...]  # (candidate, why it ranks there), best first
    constraints: tuple[str, ...]  # what the constraint annotations changed

    @property
    def blocked(self) -> bool:
        return self.decision.blocked


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "unknown"


def _above(a: Match, b: Match) -> str:
    """Why ``a`` ranks above ``b`` (ranking order: overlap, size, creation time, id)."""
    if a.matched != b.matched:
        return f"more images ({a.matched} vs {b.matched})"
    if a.size_gib != b.size_gib:
        return f"same overlap, smaller ({a.size_gib} vs {b.size_gib} GiB)"
    if a.created_at != b.created_at:
        return f"same overlap and size, newer ({_when(a.created_at)} vs {_when(b.created_at)})"
    return "same overlap, size and creation time; id sorts first"


def _reasons(ranked: Sequence[Match]) -> list[str]:
    """For #1 why it beats #2; for every other rank why the one above beats it."""
    out: list[str] = []
    for i, match in enumerate(ranked):
        if i == 0:
            out.append(f"chosen: {_above(match, ranked[1])} than #2" if len(ranked) > 1
                       else "chosen: the only candidate")
        else:
            out.append(f"below #{i}, which has {_above(ranked[i - 1], match)}")
    return out


def _constraints(images: Sequence[str], annotations: Any, catalog: CacheCatalog,
                 now: float) -> list[str]:
    request = parse_cache_request(annotations)
    if request.mode != "auto" or not (request.perfect_match or request.match_count):
        return []
    key = (f'{PERFECT_MATCH_KEY}="true"' if request.perfect_match
           else f'{MATCH_COUNT_KEY}="{request.match_count}"')
    loose = catalog.index.rank(images, limit=len(catalog) or 1, now=now)
    tight = {m.cache_id for m in catalog.index.rank(
        images, limit=len(catalog) or 1, min_matched=request.min_matched,
        require_all=request.perfect_match, now=now)}
    excluded = [m for m in loose if m.cache_id not in tight]
    if not excluded:
        return [f"{key}: excludes no cache here"]
    names = ", ".join(f"{m.cache_id} ({m.matched}/{m.total})" for m in excluded[:TOP])
    more = f" and {len(excluded) - TOP} more" if len(excluded) > TOP else ""
    lines = [f"{key}: excludes {len(excluded)} cache(s) holding too few images: {names}{more}"]
    if loose[0].cache_id not in tight:
        lines.append(f"without it the pod would start from {loose[0].cache_id} "
                     f"({loose[0].matched}/{loose[0].total} images)")
    if not tight:
        lines.append("no cache qualifies: the pod starts without a cache (never "
                     "AutoMatchImageCache, which would widen the constraint)")
    return lines


async def explain(pod: Any, catalog: CacheCatalog, *, now: float | None = None,
                  **decide: Any) -> Explanation:
    """The node's decision for ``pod`` (a ``V1Pod`` or a plain dict) and its reasons."""
    decision = await decide_for_pod(pod, catalog, now=now, **decide)
    current = now if now is not None else time.time()
    images, _ = pod_images(containers_of(pod))
    request = parse_cache_request(annotations_of(pod))
    ranked: list[Match] = []
    if request.mode == "auto" and images:
        ranked = catalog.index.rank(images, limit=TOP, min_matched=request.min_matched,
                                    require_all=request.perfect_match, now=current)
    constraints = _constraints(images, annotations_of(pod), catalog, current)
    return Explanation(decision=decision, images=tuple(images),
                       ranked=tuple(zip(ranked, _reasons(ranked), strict=True)),
                       constraints=tuple(constraints))


def render(title: str, e: Explanation, catalog: CacheCatalog) -> list[str]:
    """Plain-text lines for one pod."""
    d = e.decision
    lines = [f"{title}: {len(e.images)} image(s), "
             f"{d.mode + ' image cache' if d.mode else 'no image cache asked for'}"]
    for rank, (match, why) in enumerate(e.ranked, 1):
        info = catalog.get(match.cache_id)
        name = f" ({info.name})" if info is not None and info.name else ""
        lines.append(f"  {rank}. {match.cache_id}{name}: {match.matched}/{match.total} images, "
                     f"{match.size_gib} GiB, created {_when(match.created_at)}")
        lines.append(f"     {why}")
    if d.mode == "auto" and not e.ranked:
        lines.append("  no qualifying cache")
    for i, change in enumerate(e.constraints):
        lines.append(("  constraints: " if i == 0 else "    ") + change)
    if d.blocked:
        verdict = f"BLOCKED: {d.reason}"
    elif d.image_snapshot_id:
        verdict = f"{d.result}: ImageSnapshotId={d.image_snapshot_id} ({d.match})"
    elif d.auto_match_image_cache:
        verdict = f"{d.result}: AutoMatchImageCache (ECI matches server-side)"
    elif d.build_cache:
        verdict = (f"{d.result}: starts without a cache; the node builds one of its "
                   f"{d.total} images for the next such pod")
    elif d.mode:
        verdict = f"{d.result}: starts without a cache"
    else:
        verdict = "no cache"
    lines.append(f"  => {verdict}")
    return lines
