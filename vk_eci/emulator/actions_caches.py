"""Image-cache actions: Create, Describe (with server-side matching), Update, Delete."""

from __future__ import annotations

from typing import Any

from vk_eci.emulator import matching, placement, validate
from vk_eci.emulator.caches import Cache, plan_build, render
from vk_eci.emulator.catalog import Access, image_size_mb
from vk_eci.emulator.context import Ctx
from vk_eci.emulator.errors import ApiError, cache_not_found, invalid, missing
from vk_eci.emulator.paging import page
from vk_eci.emulator.params import get_bool, get_int, get_str, get_str_list, get_tags
from vk_eci.emulator.state import TokenRecord

MAX_IMAGES = 20


def _images(ctx: Ctx, *, required: bool) -> tuple[list[str], list[str]]:
    images = get_str_list(ctx.tree, "Image", max_items=MAX_IMAGES)
    if not images:
        if required:
            raise missing("Image.1")
        return [], []
    norm = [validate.image(img, f"Image.{i}") for i, img in enumerate(images, 1)]
    return images, norm


def new_cache(ctx: Ctx, name: str, images: list[str], size_gib: int, retention: int | None,
              tags: list[tuple[str, str]], creds: list[tuple[str, str, str]],
              access: Access | None = None) -> Cache:
    """Create a cache and plan its build (used by CreateImageCache and auto-create); its
    builder pulls with ``creds`` and the registry ``access`` the request gave."""
    state = ctx.state
    norm = [validate.image(img, f"Image.{i}") for i, img in enumerate(images, 1)]
    cache = Cache(state.new_id("imc-"), name, state.region, size_gib, retention, ctx.now, tags,
                  state.new_id("s-"), state.new_id("eci-"), norm_images=norm)
    sizes = [image_size_mb(n) for n in norm]
    errors = [state.registries.pull_error(img, creds, access) for img in images]
    cache.builds.append(plan_build(ctx.now, images, sizes, errors, size_gib, state.timing,
                                   set(), norm))
    state.caches.add(cache)
    return cache


def create_image_cache(ctx: Ctx) -> dict[str, Any]:
    tree = ctx.tree
    token = get_str(tree, "ClientToken")
    fingerprint = ctx.fingerprint()
    if token:
        seen = ctx.state.tokens.get(("CreateImageCache", token))
        if seen is not None:
            if seen.fingerprint != fingerprint:
                raise ApiError("IdempotentParameterMismatch", "The request uses the same client "
                               f"token {token!r} as a previous, but non-identical request.", 400)
            cache = ctx.state.caches.caches.get(seen.resource_id)
            return {"ImageCacheId": seen.resource_id,
                    "ContainerGroupId": cache.builder_group_id if cache else ""}
    name = validate.group_name(get_str(tree, "ImageCacheName"), "ImageCacheName")
    images, _ = _images(ctx, required=True)
    size = get_int(tree, "ImageCacheSize", lo=20, hi=32768) or 20
    retention = get_int(tree, "RetentionDays", lo=1, hi=65536)
    tags = get_tags(tree)
    creds = validate.credentials(tree)
    for field in ("SecurityGroupId", "VSwitchId"):
        if not get_str(tree, field):
            raise missing(field)
    vswitches = [v for v in (get_str(tree, "VSwitchId") or "").split(",") if v.strip()]
    if len(vswitches) > 10 or not all(v.strip().startswith("vsw-") for v in vswitches):
        raise invalid("VSwitchId", "expected 1 to 10 comma-separated vsw-… ids")
    get_bool(tree, "Flash")
    get_bool(tree, "AutoMatchImageCache")
    cache = new_cache(ctx, name, images, size, retention, tags, creds,
                      placement.registry_access(tree))
    cache.elimination_strategy = get_str(tree, "EliminationStrategy") or ""
    if token:
        ctx.state.tokens[("CreateImageCache", token)] = TokenRecord(fingerprint, cache.id)
    return {"ImageCacheId": cache.id, "ContainerGroupId": cache.builder_group_id}


def describe_image_caches(ctx: Ctx) -> dict[str, Any]:
    tree, now, store = ctx.tree, ctx.now, ctx.state.caches
    live = store.refresh(now)
    limit = get_int(tree, "Limit", lo=1, hi=100) or 10
    match_images = get_str_list(tree, "MatchImage", max_items=100)
    candidates: list[Cache]
    if match_images:
        norm = [validate.image(img, f"MatchImage.{i}") for i, img in enumerate(match_images, 1)]
        full = get_bool(tree, "ImageFullMatch")
        count = get_int(tree, "ImageMatchCountRequest", lo=1) or 1
        candidates = [m.cache for m in matching.rank(live, norm, now, ctx.state.model,
                                                      min_matched=count, require_all=full)]
    else:
        candidates = live
    ids = get_str(tree, "ImageCacheId")
    if ids:
        wanted = {i.strip() for i in ids.split(",") if i.strip()}
        candidates = [c for c in candidates if c.id in wanted]
    name = get_str(tree, "ImageCacheName")
    if name:
        candidates = [c for c in candidates if c.name == name]
    snapshot = get_str(tree, "SnapshotId")
    if snapshot:
        candidates = [c for c in candidates if c.snapshot_id == snapshot]
    image = get_str(tree, "Image")
    if image:
        key = validate.image(image, "Image")
        candidates = [c for c in candidates if key in c.norm_images]
    tags = get_tags(tree)
    if tags:
        candidates = [c for c in candidates if all(t in c.tags for t in tags)]
    chosen, token = page(candidates, limit, get_str(tree, "NextToken"))
    return {"ImageCaches": [render(c, now, ctx.state.timing) for c in chosen],
            "TotalCount": len(candidates), "NextToken": token}


def _get(ctx: Ctx) -> Cache:
    cache_id = get_str(ctx.tree, "ImageCacheId", required=True)
    assert cache_id is not None
    ctx.state.caches.refresh(ctx.now)
    cache = ctx.state.caches.caches.get(cache_id)
    if cache is None:
        raise cache_not_found(cache_id)
    return cache


def update_image_cache(ctx: Ctx) -> dict[str, Any]:
    cache = _get(ctx)
    tree, now, state = ctx.tree, ctx.now, ctx.state
    st = cache.status(now)
    if st not in ("Ready", "UpdateFailed"):
        raise ApiError("IncorrectImageCacheStatus", f"The image cache {cache.id} is {st}; only a "
                       "Ready or UpdateFailed cache can be updated.", 400)
    images, norm = _images(ctx, required=False)
    size = get_int(tree, "ImageCacheSize", lo=20, hi=32768)
    retention = get_int(tree, "RetentionDays", lo=1, hi=65536)
    name = get_str(tree, "ImageCacheName")
    if name:
        cache.name = validate.group_name(name, "ImageCacheName")
    creds = validate.credentials(tree)
    if size is not None:
        if size < cache.size_gib:
            raise invalid("ImageCacheSize", f"{size} GiB is smaller than the current "
                          f"{cache.size_gib} GiB; a cache disk can only grow")
        cache.size_gib = size
    if retention is not None:
        cache.retention_days = retention
    tags = get_tags(tree)
    if tags:
        cache.tags = tags
    if images:
        kept = set(cache.norm_images) if st == "Ready" else set()
        sizes = [image_size_mb(n) for n in norm]
        errors = [state.registries.pull_error(img, creds) if n not in kept else None
                  for img, n in zip(images, norm, strict=True)]
        cache.builds.append(plan_build(now, images, sizes, errors, cache.size_gib, state.timing,
                                       kept, norm, update=True))
        cache.norm_images = norm
    state.caches.refresh(now)
    return {}


def delete_image_cache(ctx: Ctx) -> dict[str, Any]:
    cache = _get(ctx)
    ctx.state.caches.remove(cache.id)
    return {}
