"""Which image cache a pod starts from (docs/IMAGE_CACHES.md), decided just before its ECI create.

:func:`choose_cache` is pure: the pod's images, its :class:`CacheRequest` and the catalog's
current view in, a :class:`CacheDecision` out — what to send to ECI (``ImageSnapshotId`` or
``AutoMatchImageCache``), the events to emit, the annotations to record on the pod and the
result for metrics. :func:`decide_for_pod` wraps it with what needs I/O or state: refreshing a
cache the catalog does not know (or that is not Ready yet), re-listing the caches when an
automatic lookup could do better with a fresher view, the pull-policy plan and metrics.

What the decision holds, and how an explicit cache that cannot be used blocks the pod, is in
:mod:`vk_eci.cloud.caches.decision`; its names are exported from here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from matcher import InvalidReference, Match, normalize_image
from vk_eci.cloud.api.errors import EciError
from vk_eci.cloud.caches.annotations import (
    CHOSEN_CACHE_ANNOTATION,
    CHOSEN_MATCH_ANNOTATION,
    CacheRequest,
    parse_cache_request,
)
from vk_eci.cloud.caches.catalog import CacheCatalog, CacheInfo
from vk_eci.cloud.caches.decision import (
    CHOSEN,
    NORMAL,
    NOT_CHOSEN,
    NOT_PERMITTED,
    WARNING,
    CacheChoiceSettings,
    CacheDecision,
    PlannedEvent,
    Result,
)
from vk_eci.cloud.caches.permitted import (
    access_for,
    lacking,
    permitted_rank,
    server_side_allowed,
)
from vk_eci.cloud.caches.provenance import Access
from vk_eci.cloud.caches.pull_policy import (
    ContainerImage,
    PullPolicyMode,
    containers_of,
    kept_for_age,
    mutable,
    plan_pull_policy,
    stale_cache,
)
from vk_eci.cloud.placement.values import annotations_of
from vk_eci.log import caches_logger
from vk_eci.metrics import Metrics


def pod_images(containers: Iterable[ContainerImage]) -> tuple[list[str], list[str]]:
    """Distinct normalised images of the containers, and problems with invalid references."""
    images: dict[str, None] = {}
    problems: list[str] = []
    for c in containers:
        try:
            images[normalize_image(c.image)] = None
        except InvalidReference as e:
            problems.append(f"container {c.name}: {e}")
    return list(images), problems


def _gib(size: int | None) -> str:
    return f"{size} GiB" if size is not None else "unknown size"


def _described(info: CacheInfo) -> str:
    return f"{info.cache_id} ({info.name})" if info.name else info.cache_id


def _request_events(request: CacheRequest) -> list[PlannedEvent]:
    events = [PlannedEvent(WARNING, "InvalidAnnotation", p.message()) for p in request.problems]
    events += [PlannedEvent(NORMAL, "ImageCacheAnnotation", n) for n in request.notes]
    return events


def _chosen_annotations(cache_id: str | None, matched: int, total: int) -> dict[str, str]:
    return {CHOSEN_CACHE_ANNOTATION: cache_id or "none",
            CHOSEN_MATCH_ANNOTATION: f"{matched}/{total}"}


def _explicit(images: Sequence[str], request: CacheRequest, catalog: CacheCatalog,
              now: float, settings: CacheChoiceSettings,
              events: list[PlannedEvent], access: Access) -> CacheDecision:
    cache_id = request.explicit_id or ""
    key = request.explicit_key or "explicit cache annotation"
    total = len(images)
    if not request.explicit_valid:
        reason = (f'annotation {key}="{cache_id}" is not an image cache id; the pod waits '
                  f"until it names one")
        return CacheDecision(mode="explicit", result="not_found", cache_id=cache_id,
                             total=total, blocked=True, invalid=True, reason=reason,
                             events=tuple(events))
    info = catalog.get(cache_id)
    if info is None or not info.ready(now):
        state = info.state(now) if info is not None else "not found in ECI"
        progress = f", {info.progress} built" if info is not None and info.progress else ""
        reason = (f"image cache {cache_id} named by {key} is {state}{progress}; "
                  f"the pod stays Pending until the cache is Ready")
        events.append(PlannedEvent(WARNING, "ImageCacheNotReady" if info else "ImageCacheNotFound",
                                   reason))
        return CacheDecision(mode="explicit", result="not_ready" if info else "not_found",
                             cache_id=cache_id, total=total, blocked=True, cache_state=state,
                             reason=reason, events=tuple(events),
                             retry_after=settings.explicit_retry_seconds)
    if refused := lacking(access, info):
        # Another namespace's private image could start from this cache's disk without
        # authenticating: refused, and said plainly (docs/IMAGE_CACHES.md).
        reason = (f"image cache {cache_id} named by {key} holds images of "
                  f"{', '.join(sorted(refused))}, which needs registry credentials the pod "
                  f"does not have (its imagePullSecrets); the pod stays Pending")
        events.append(PlannedEvent(WARNING, NOT_PERMITTED, reason))
        return CacheDecision(mode="explicit", result="not_permitted", cache_id=cache_id,
                             total=total, blocked=True, cache_state=info.status,
                             reason=reason, events=tuple(events),
                             retry_after=settings.explicit_retry_seconds)
    held = set(info.images)
    missing = tuple(i for i in images if i not in held)
    matched = total - len(missing)
    result: Result = "hit" if not missing else ("partial" if matched else "miss")
    if matched:
        msg = (f"image cache {_described(info)} chosen by {key} holds {matched}/{total} images, "
               f"{_gib(info.size_gib)}")
        if missing:
            msg += f"; ECI pulls {', '.join(missing)}"
        events.append(PlannedEvent(NORMAL, CHOSEN, msg))
    else:
        # Asked for explicitly, so it is used; but the user should know it buys nothing.
        events.append(PlannedEvent(
            WARNING, "ImageCacheHoldsNoImage",
            f"image cache {_described(info)} chosen by {key} holds none of the pod's {total} "
            f"images; the pod is created with it as asked and ECI pulls every image"))
    return CacheDecision(
        mode="explicit", result=result, cache_id=cache_id, image_snapshot_id=cache_id,
        matched=matched, total=total, missing=missing, size_gib=info.size_gib,
        cache_state=info.status, reason=f"named by {key}", events=tuple(events),
        annotations=_chosen_annotations(cache_id, matched, total))


def _miss_reason(images: Sequence[str], request: CacheRequest, catalog: CacheCatalog,
                 now: float, access: Access) -> str:
    total = len(images)
    if request.match_count is not None and request.match_count > total and not \
            request.perfect_match:
        return (f"at least {request.match_count} images were requested but the pod has "
                f"only {total}")
    # The best cache with any overlap at all, to say why it was not good enough.
    ranked = permitted_rank(catalog, access, images, limit=1, min_matched=1,
                            require_all=False, now=now)
    loose = ranked.matches
    if not loose:
        if ranked.refused:
            return (f"no Ready cache the pod may use holds any of its {total} images (caches "
                    f"of {', '.join(sorted(ranked.refused))} need registry credentials the "
                    f"pod does not have)")
        return f"no Ready cache holds any of the pod's {total} images"
    best = loose[0]
    if request.perfect_match:
        return (f"the best Ready cache {best.cache_id} held {best.matched} of {total} images "
                f"but perfect match was asked")
    return (f"the best Ready cache {best.cache_id} held {best.matched} of {total} images but "
            f"at least {request.min_matched} were requested")


def _auto(images: Sequence[str], request: CacheRequest, catalog: CacheCatalog, now: float,
          settings: CacheChoiceSettings, events: list[PlannedEvent],
          catalog_problem: str | None, access: Access) -> CacheDecision:
    total = len(images)
    ranked: list[Match] = []
    if images and not (request.match_count is not None and request.match_count > total
                       and not request.perfect_match):
        ranked = permitted_rank(catalog, access, images, limit=2,
                                min_matched=request.min_matched,
                                require_all=request.perfect_match, now=now).matches
    if not ranked:
        if catalog_problem is not None:
            reason = f"the node could not list the image caches ({catalog_problem})"
        elif images:
            reason = _miss_reason(images, request, catalog, now, access)
        else:
            reason = "the pod has no image that can be matched"
        # ECI's server-side match takes any overlap: sending it for a constrained pod would
        # widen what the pod asked for. Such a pod starts without a cache, and the
        # node builds one with its images so that the next identical pod hits.
        constrained = request.perfect_match or request.match_count is not None
        server_side = settings.auto_create_on_miss and bool(images) and not constrained
        refusal = server_side_allowed(catalog, access, images, now) if server_side else None
        server_side = server_side and refusal is None
        build = (settings.auto_create_on_miss and constrained and bool(images)
                 and catalog_problem is None)
        if server_side:
            tail = "; ECI matches server-side and builds a cache for next time"
        elif build:
            tail = ("; the pod starts without a cache (ECI's server-side match would not keep "
                    "its constraint) and the node builds one of its images for the next pod")
        elif constrained:
            tail = "; the pod starts without a cache and pulls its images"
        elif refusal is not None:
            tail = f"; {refusal}: the pod starts without a cache and pulls its images"
        else:
            tail = "; the pod pulls its images"
        events.append(PlannedEvent(WARNING, NOT_CHOSEN, reason + tail))
        return CacheDecision(
            mode="auto", result="miss", total=total, missing=tuple(images), reason=reason,
            auto_match_image_cache=server_side, build_cache=build,
            events=tuple(events), annotations=_chosen_annotations(None, 0, total))
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    info = catalog.get(best.cache_id)
    name = f" ({info.name})" if info is not None and info.name else ""
    msg = (f"matched image cache {best.cache_id}{name}: {best.matched}/{best.total} images, "
           f"{best.size_gib} GiB")
    if best.missing:
        msg += f"; ECI pulls {', '.join(best.missing)}"
    if runner_up is not None:
        msg += (f"; runner-up {runner_up.cache_id} ({runner_up.matched}/{runner_up.total}, "
                f"{runner_up.size_gib} GiB)")
    events.append(PlannedEvent(NORMAL, CHOSEN, msg))
    return CacheDecision(
        mode="auto", result="hit" if not best.missing else "partial", cache_id=best.cache_id,
        image_snapshot_id=best.cache_id, matched=best.matched, total=best.total,
        missing=best.missing, size_gib=best.size_gib,
        runner_up=runner_up.cache_id if runner_up else None,
        cache_state=info.status if info else None, reason="automatic match",
        events=tuple(events), annotations=_chosen_annotations(best.cache_id, best.matched,
                                                              best.total))


def choose_cache(images: Sequence[str], request: CacheRequest, catalog: CacheCatalog,
                 now: float, settings: CacheChoiceSettings | None = None,
                 image_problems: Sequence[str] = (),
                 catalog_problem: str | None = None,
                 credentials: frozenset[str] = frozenset()) -> CacheDecision:
    """The decision for a pod whose distinct normalised images are ``images``.

    ``image_problems`` names container images that could not be parsed: they cannot be
    matched, so an automatic request treats them as missing (ECI will report them anyway).
    ``catalog_problem`` says why the catalog could not be loaded (an automatic request then
    misses, and ECI's server-side match still applies when auto-create is on).
    ``credentials`` are the registries the pod has pull credentials for: a cache needing
    others is never chosen (docs/IMAGE_CACHES.md, "Private images stay private").
    """
    settings = settings or CacheChoiceSettings()
    access = access_for(catalog, settings.private_registries, credentials)
    events = _request_events(request)
    if request.mode is None:
        return CacheDecision(events=tuple(events))
    if image_problems:
        events += [PlannedEvent(WARNING, "InvalidImageReference", p) for p in image_problems]
    if request.mode == "explicit":
        return _explicit(images, request, catalog, now, settings, events, access)
    return _auto(images, request, catalog, now, settings, events, catalog_problem, access)


def _worth_relisting(decision: CacheDecision, images: Sequence[str], request: CacheRequest,
                     catalog: CacheCatalog, now: float) -> bool:
    """Whether an automatic decision could change with a fresher listing: it missed or held
    only some images (a cache Ready since the last listing may do better), or the catalog knows
    caches holding some of the pod's images that were still building when last listed.
    Whether the listing is old enough to list again, or one in flight is to be waited for, is
    :meth:`CacheCatalog.relist_if_stale`'s to say: a listing another pod began a moment ago
    counts as fresh, but its answer is not in the view yet."""
    if decision.mode != "auto" or not images:
        return False
    if request.match_count is not None and request.match_count > len(images) \
            and not request.perfect_match:
        return False  # no cache can satisfy it, however fresh
    return decision.result in ("miss", "partial") or bool(catalog.building_with(images, now))


async def decide_for_pod(pod: Any, catalog: CacheCatalog, *,
                         settings: CacheChoiceSettings | None = None,
                         metrics: Metrics | None = None,
                         now: float | None = None,
                         counted: set[tuple[str, str]] | None = None,
                         credentials: frozenset[str] = frozenset()) -> CacheDecision:
    """Parse the pod's annotations, refresh what the decision needs, choose, plan the pull
    policy and count the lookup. Raises only the catalog client's errors, and only for an
    explicit request (an automatic one degrades to a miss that says why).

    Refreshing: an explicit cache the catalog does not know, or that is not Ready, is asked
    for at once; an automatic lookup that could do better with fresher data re-lists the
    caches (at most once per ``catalog.min_relist_age``, shared by concurrent pods) and decides
    again. ``counted`` holds the (mode, result) outcomes already counted for this pod: a pod
    retried with the same outcome is not counted again, so the lookup metrics count pods.
    The match duration covers the whole decision, refreshes included: it is what the node adds
    to the pod's start.
    """
    settings = settings or CacheChoiceSettings()
    started = time.perf_counter()
    request = parse_cache_request(annotations_of(pod))
    catalog_problem: str | None = None
    if request.mode == "auto":
        try:
            await catalog.ensure_synced()
        except EciError as e:
            # ECI can still match server-side; refusing the pod would help nobody.
            catalog_problem = str(e)
    if request.mode == "explicit" and request.explicit_valid and request.explicit_id:
        current = now if now is not None else catalog.now()
        info = catalog.get(request.explicit_id)
        if info is None or not info.ready(current):
            # The periodic re-sync may be minutes away; the pod should not wait for it.
            await catalog.refresh_one(request.explicit_id)
    containers = containers_of(pod)
    images, problems = pod_images(containers)
    current = now if now is not None else catalog.now()
    decision = choose_cache(images, request, catalog, current, settings, problems,
                            catalog_problem, credentials)
    if catalog_problem is None and _worth_relisting(decision, images, request, catalog,
                                                    current):
        try:
            await catalog.relist_if_stale()
        except EciError as e:
            caches_logger.warning("image caches could not be re-listed for pod %s, deciding "
                                  "with the last listing: %s", pod_ref(pod), e,
                                  extra={"pod": pod_ref(pod)})
        # Decide again even when another pod's listing was the fresh one.
        current = now if now is not None else catalog.now()
        decision = choose_cache(images, request, catalog, current, settings, problems,
                                catalog_problem, credentials)
    if request.fail_on_create_err:
        decision = replace(decision, fail_on_create_err=True)
    if decision.image_snapshot_id is not None:
        decision = _pull_policy(decision, containers, catalog, settings, credentials,
                                now if now is not None else catalog.now())
    elapsed = time.perf_counter() - started
    if metrics is not None and decision.mode is not None and decision.result is not None:
        outcome = (decision.mode, decision.result)
        if counted is None or outcome not in counted:
            if counted is not None:
                counted.add(outcome)
            metrics.cache_lookups.labels(mode=decision.mode, result=decision.result).inc()
            metrics.match_duration.observe(elapsed)
            if not decision.blocked:
                metrics.images_requested.inc(decision.total)
                metrics.images_from_cache.inc(decision.matched)
    if decision.mode is not None:
        caches_logger.info(
            "image cache for pod: %s %s %s %s", decision.mode, decision.result,
            decision.cache_id or "-", decision.match,
            extra={"pod": pod_ref(pod), "reason": decision.reason})
    return decision


def _pull_policy(decision: CacheDecision, containers: Sequence[ContainerImage],
                 catalog: CacheCatalog, settings: CacheChoiceSettings,
                 credentials: frozenset[str], now: float) -> CacheDecision:
    """The pull-policy plan of a pod starting from ``decision.image_snapshot_id``: ``Always``
    rewritten, except for registries that need credentials and for mutable tags on a cache
    older than the refresh period."""
    cache_id = str(decision.image_snapshot_id)
    access = access_for(catalog, settings.private_registries, credentials)
    # The cache's ImageCache object's own period and last refresh when the controller here
    # said them, else the node's period and ECI's creation time.
    period, built = catalog.refresh_of(cache_id, settings.refresh_period)
    stale = catalog.get(cache_id) is not None and stale_cache(built, now, period)

    def keep(image: str) -> bool:
        return access.keeps_always(image) or (stale and mutable(image))
    plan = plan_pull_policy(containers, cache_id, settings.pull_policy_mode, keep_always=keep)
    events = [PlannedEvent(*plan.event)] if plan.event is not None else []
    if stale and settings.pull_policy_mode is not PullPolicyMode.OFF \
            and (kept := kept_for_age(
            [c for c in containers if not access.keeps_always(c.image)], cache_id,
            now - built, period)) is not None:
        events.append(PlannedEvent(*kept))
    if not events:
        return decision
    return replace(decision, events=(*decision.events, *events),
                   pull_policy_overrides=plan.overrides)


def pod_ref(pod: Any) -> str:
    """``namespace/name`` of a ``V1Pod`` (for messages and logs)."""
    metadata = getattr(pod, "metadata", None)
    if metadata is None and isinstance(pod, dict):
        md = pod.get("metadata") or {}
        return f"{md.get('namespace', '')}/{md.get('name', '')}"
    return f"{getattr(metadata, 'namespace', '')}/{getattr(metadata, 'name', '')}"


