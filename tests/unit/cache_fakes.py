"""An in-memory stand-in for the one EciClient call the cache catalog makes.

It is our own protocol (``ImageCacheLister``), not the SDK: it answers with the SDK's real
response models, as ``EciClient.describe_image_caches`` does. Over-HTTP behaviour against the
emulator is covered by tests/integration/test_cache_catalog.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alibabacloud_eci20180808.models import (
    DescribeImageCachesResponseBodyImageCaches,
    DescribeImageCachesResponseBodyImageCachesTags,
)

NOW = 1_700_000_000.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cache_model(cache_id: str, images: Sequence[str], *, size: int = 20,
                created: float = NOW - 3600, status: str = "Ready", name: str = "",
                expires: float | None = None, progress: str = "100%",
                tags: dict[str, str] | None = None) -> DescribeImageCachesResponseBodyImageCaches:
    return DescribeImageCachesResponseBodyImageCaches(
        tags=[DescribeImageCachesResponseBodyImageCachesTags(key=k, value=v)
              for k, v in (tags or {}).items()],
        image_cache_id=cache_id, image_cache_name=name or cache_id.replace("imc-", "cache-"),
        images=list(images), image_cache_size=size, creation_time=iso(created), status=status,
        expire_date_time=iso(expires) if expires is not None else None, progress=progress,
        snapshot_id="s-" + cache_id[4:])


class FakeLister:
    """Caches by id; counts calls; ``delay`` lets concurrent callers overlap."""

    def __init__(self, *models: Any, delay: float = 0.0) -> None:
        self.caches: dict[str, Any] = {m.image_cache_id: m for m in models}
        self.calls: list[tuple[str, ...] | None] = []
        self.delay = delay
        self.error: Exception | None = None

    def put(self, model: Any) -> None:
        self.caches[model.image_cache_id] = model

    async def describe_image_caches(self, *, ids: Sequence[str] | None = None) -> list[Any]:
        self.calls.append(tuple(ids) if ids is not None else None)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if ids is None:
            return list(self.caches.values())
        return [self.caches[i] for i in ids if i in self.caches]
