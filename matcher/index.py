"""``CacheIndex``: the vectorised, incremental image-cache matcher.

Layout. Every distinct normalised image is interned to an integer id. Every cache is a *row*;
per-row columns (size, creation time, expiry, ready, alive) are numpy arrays. Each image has a
posting array: the rows holding it, in ascending row order (rows are only ever appended, so
appending keeps the order). A lookup touches only the postings of the pod's images.

Removal is lazy: a removed row is marked dead and stays in postings until a posting is half dead
(then that posting is filtered) or the index is half dead (then rows are renumbered densely and
every posting remapped). Both are amortised over the removals that caused them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from matcher.match import Match
from matcher.postings import Posting
from matcher.reference import normalize_image
from matcher.search import Columns, best_row, ranked_rows

__all__ = ["CacheIndex"]

_MIN_CAPACITY = 64
_WIDTH = 20
# Full renumbering of rows costs one pass over every posting; it waits until dead rows
# outnumber live ones so that it is paid for by at least as many removals.
_COMPACT_MIN_DEAD = 4096


def _distinct_normalised(images: Iterable[str]) -> list[str]:
    if isinstance(images, str):
        # A bare string is an iterable of characters; taking it as one image is the likely intent
        # but hides a bug in the caller, so it is refused by name.
        raise TypeError(f"images must be an iterable of references, not the string {images!r}")
    seen: dict[str, None] = {}
    for ref in images:
        seen.setdefault(normalize_image(ref), None)
    return list(seen)


class CacheIndex:
    """Ready-cache lookup by image overlap, size, creation time and id.

    Not thread-safe: lookups share scratch arrays. Use one index from one thread (the event
    loop); every call is short (see ``benchmarks/README.md``). The first lookup of a popular image
    after many updates may re-sort that image's posting (milliseconds at 100k caches).
    """

    def __init__(self, *, small_budget: int = 1024, first_chunk: int = 64) -> None:
        """``small_budget`` and ``first_chunk`` tune the search (see ``matcher.search``); the
        answers do not depend on them."""
        if small_budget < 0 or first_chunk < 1:
            raise ValueError(f"bad tuning: small_budget={small_budget}, first_chunk={first_chunk}")
        self._small_budget = small_budget
        self._first_chunk = first_chunk
        cap = _MIN_CAPACITY
        self._n = 0  # rows used, live or dead
        self._dead = 0
        self._size = np.zeros(cap, dtype=np.float64)
        self._created = np.zeros(cap, dtype=np.float64)
        self._expires = np.full(cap, math.inf, dtype=np.float64)
        # ``ready`` is False for dead rows too, so one column answers "may this row be chosen".
        self._ready = np.zeros(cap, dtype=np.bool_)
        self._alive = np.zeros(cap, dtype=np.bool_)
        self._counts = np.zeros(cap, dtype=np.int32)  # scratch, all zero between lookups
        self._marks = np.zeros(cap, dtype=np.int32)  # scratch
        # Each row's image ids, padded with -1; ECI caches hold at most 20 images, wider caches
        # widen the matrix.
        self._images = np.full((cap, _WIDTH), -1, dtype=np.int32)
        self._marker = np.zeros(_MIN_CAPACITY + 1, dtype=np.int32)
        self._row_id: list[str | None] = []
        self._row_imgs: list[tuple[int, ...]] = []
        self._row_size: list[int] = []
        self._row_of: dict[str, int] = {}
        self._img_of: dict[str, int] = {}
        self._img_name: list[str | None] = []
        self._post: list[Posting | None] = []
        self._free_imgs: list[int] = []
        #: Posting entries read by lookups so far (a cost figure for benchmarks and metrics).
        self.postings_touched = 0

    # ---- collection protocol -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, cache_id: object) -> bool:
        return cache_id in self._row_of

    # ---- updates --------------------------------------------------------------------------

    def upsert(
        self,
        cache_id: str,
        images: Iterable[str],
        *,
        size_gib: int,
        created_at: float,
        ready: bool = True,
        expires_at: float | None = None,
    ) -> None:
        """Add the cache, or replace what is known of it."""
        if not isinstance(cache_id, str) or not cache_id:
            raise ValueError(f"cache id must be a non-empty string, not {cache_id!r}")
        names = _distinct_normalised(images)
        if not names:
            raise ValueError(f"cache {cache_id}: has no images")
        if isinstance(size_gib, bool) or not isinstance(size_gib, int) or size_gib < 0:
            raise ValueError(
                f"cache {cache_id}: size_gib must be a non-negative int, not {size_gib!r}"
            )
        if not math.isfinite(created_at):
            raise ValueError(f"cache {cache_id}: created_at must be finite, not {created_at!r}")
        if expires_at is not None and math.isnan(expires_at):
            raise ValueError(f"cache {cache_id}: expires_at must be a time or None, not NaN")
        expires = math.inf if expires_at is None else float(expires_at)

        row = self._row_of.get(cache_id)
        if row is not None:
            same = (
                self._row_size[row] == size_gib
                and self._created[row] == created_at
                and {self._img_name[i] for i in self._row_imgs[row]} == set(names)
            )
            if same:
                # Status changes (building -> ready, expiry set) are the common update; they
                # leave the postings alone.
                self._ready[row] = bool(ready)
                self._expires[row] = expires
                return
            self._kill(row)
        self._append(cache_id, names, size_gib, float(created_at), bool(ready), expires)
        self._maybe_compact()

    def remove(self, cache_id: str) -> bool:
        """Forget the cache; False when it was not known."""
        row = self._row_of.get(cache_id)
        if row is None:
            return False
        self._kill(row)
        self._maybe_compact()
        return True

    def _append(
        self,
        cache_id: str,
        names: list[str],
        size: int,
        created: float,
        ready: bool,
        expires: float,
    ) -> None:
        if self._n == len(self._size):
            self._grow()
        row = self._n
        self._n += 1
        self._size[row] = size
        self._created[row] = created
        self._expires[row] = expires
        self._ready[row] = ready
        self._alive[row] = True
        imgs = tuple(self._intern(name) for name in names)
        if len(imgs) > self._images.shape[1]:
            wide = np.full((len(self._images), len(imgs)), -1, dtype=np.int32)
            wide[:, : self._images.shape[1]] = self._images
            self._images = wide
        self._images[row, : len(imgs)] = imgs
        self._images[row, len(imgs) :] = -1
        for img in imgs:
            post = self._post[img]
            assert post is not None
            post.append(row)
        self._row_id.append(cache_id)
        self._row_imgs.append(imgs)
        self._row_size.append(size)
        self._row_of[cache_id] = row

    def _grow(self) -> None:
        cap = 2 * len(self._size)

        def grown(a: npt.NDArray[np.generic], fill: object) -> npt.NDArray[np.generic]:
            out = np.full(cap, fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self._size = grown(self._size, 0.0)  # type: ignore[assignment]
        self._created = grown(self._created, 0.0)  # type: ignore[assignment]
        self._expires = grown(self._expires, math.inf)  # type: ignore[assignment]
        self._ready = grown(self._ready, False)  # type: ignore[assignment]
        self._alive = grown(self._alive, False)  # type: ignore[assignment]
        self._counts = np.zeros(cap, dtype=np.int32)
        self._marks = np.zeros(cap, dtype=np.int32)
        images = np.full((cap, self._images.shape[1]), -1, dtype=np.int32)
        images[: len(self._images)] = self._images
        self._images = images

    def _intern(self, name: str) -> int:
        img = self._img_of.get(name)
        if img is not None:
            return img
        if self._free_imgs:
            img = self._free_imgs.pop()
            self._img_name[img] = name
            self._post[img] = Posting()
        else:
            img = len(self._img_name)
            self._img_name.append(name)
            self._post.append(Posting())
            if img + 1 >= len(self._marker):  # the last slot is the padding's, always 0
                self._marker = np.zeros(2 * len(self._marker), dtype=np.int32)
        self._img_of[name] = img
        return img

    def _kill(self, row: int) -> None:
        cache_id = self._row_id[row]
        assert cache_id is not None
        del self._row_of[cache_id]
        self._row_id[row] = None
        self._alive[row] = False
        self._ready[row] = False
        self._dead += 1
        for img in self._row_imgs[row]:
            post = self._post[img]
            assert post is not None
            post.dead += 1
            if post.dead == post.n:
                self._release_image(img)
            elif 2 * post.dead > post.n:
                post.filtered(self._alive)
        self._row_imgs[row] = ()

    def _release_image(self, img: int) -> None:
        name = self._img_name[img]
        assert name is not None
        del self._img_of[name]
        self._img_name[img] = None
        self._post[img] = None
        self._free_imgs.append(img)

    def _maybe_compact(self) -> None:
        if self._dead < _COMPACT_MIN_DEAD or self._dead < len(self._row_of):
            return
        n = self._n
        keep = self._alive[:n]
        remap = (np.cumsum(keep, dtype=np.int64) - 1).astype(np.int32)
        live = len(self._row_of)
        cap = max(_MIN_CAPACITY, 2 * live)

        def packed(a: npt.NDArray[np.generic], fill: object) -> npt.NDArray[np.generic]:
            out = np.full(cap, fill, dtype=a.dtype)
            out[:live] = a[:n][keep]
            return out

        for post in self._post:
            if post is not None:
                post.remapped(keep, remap)
        self._size = packed(self._size, 0.0)  # type: ignore[assignment]
        self._created = packed(self._created, 0.0)  # type: ignore[assignment]
        self._expires = packed(self._expires, math.inf)  # type: ignore[assignment]
        self._ready = packed(self._ready, False)  # type: ignore[assignment]
        self._alive = packed(self._alive, False)  # type: ignore[assignment]
        self._counts = np.zeros(cap, dtype=np.int32)
        self._marks = np.zeros(cap, dtype=np.int32)
        images = np.full((cap, self._images.shape[1]), -1, dtype=np.int32)
        images[:live] = self._images[:n][keep]
        self._images = images
        alive_rows = [r for r in range(n) if self._row_id[r] is not None]
        self._row_id = [self._row_id[r] for r in alive_rows]
        self._row_imgs = [self._row_imgs[r] for r in alive_rows]
        self._row_size = [self._row_size[r] for r in alive_rows]
        self._row_of = {cid: r for r, cid in enumerate(self._row_id) if cid is not None}
        self._n = live
        self._dead = 0

    # ---- lookups --------------------------------------------------------------------------

    def best(
        self,
        images: Iterable[str],
        *,
        min_matched: int = 1,
        require_all: bool = False,
        now: float | None = None,
    ) -> Match | None:
        """The best candidate cache for a pod's images, or None when there is none."""
        names = _distinct_normalised(images)
        need = self._threshold(names, min_matched, require_all)
        if need is None:
            return None
        when = time.time() if now is None else now
        ids = [self._img_of[name] for name in names if name in self._img_of]
        row, read = best_row(self._postings(ids), ids, need, when, self._columns())
        self.postings_touched += read
        return None if row < 0 else self._match(row, names)

    def best_many(
        self,
        pods: Iterable[Iterable[str]],
        *,
        min_matched: int = 1,
        require_all: bool = False,
        now: float | None = None,
    ) -> list[Match | None]:
        """``best`` for each pod, with one clock reading for all."""
        when = time.time() if now is None else now
        return [
            self.best(images, min_matched=min_matched, require_all=require_all, now=when)
            for images in pods
        ]

    def rank(
        self,
        images: Iterable[str],
        *,
        limit: int = 10,
        min_matched: int = 1,
        require_all: bool = False,
        now: float | None = None,
    ) -> list[Match]:
        """Up to ``limit`` candidate caches, best first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        names = _distinct_normalised(images)
        need = self._threshold(names, min_matched, require_all)
        if need is None or limit == 0:
            return []
        when = time.time() if now is None else now
        ids = [self._img_of[name] for name in names if name in self._img_of]
        top, read = ranked_rows(self._postings(ids), need, when, self._columns(), limit)
        self.postings_touched += read
        return [self._match(row, names) for row, _ in top]

    def explain(
        self,
        images: Iterable[str],
        *,
        min_matched: int = 1,
        require_all: bool = False,
        now: float | None = None,
    ) -> str:
        """Why the best cache won, and over which runner-up; or why there is none."""
        names = _distinct_normalised(images)
        found = self.rank(names, limit=2, min_matched=min_matched, require_all=require_all, now=now)
        if not found:
            need = self._threshold(names, min_matched, require_all)
            wanted = "all" if require_all else f"at least {min_matched}"
            return f"no ready, unexpired cache holds {wanted} of the pod's {len(names)} images" + (
                "" if need is not None else " (more than the pod has)"
            )
        return found[0].explain(found[1] if len(found) > 1 else None)

    @staticmethod
    def _threshold(names: Sequence[str], min_matched: int, require_all: bool) -> int | None:
        if isinstance(min_matched, bool) or not isinstance(min_matched, int) or min_matched < 1:
            raise ValueError(f"min_matched must be an int >= 1, not {min_matched!r}")
        if not names:
            return None
        need = len(names) if require_all else min_matched
        return need if need <= len(names) else None

    def _postings(self, ids: list[int]) -> list[Posting]:
        posts = [self._post[i] for i in ids]
        return [p for p in posts if p is not None]  # interned ids always have a posting

    def _columns(self) -> Columns:
        return Columns(
            size=self._size,
            created=self._created,
            expires=self._expires,
            ready=self._ready,
            alive=self._alive,
            row_id=self._row_id,
            counts=self._counts,
            marks=self._marks,
            images=self._images,
            marker=self._marker,
            small_budget=self._small_budget,
            first_chunk=self._first_chunk,
        )

    def _match(self, row: int, names: list[str]) -> Match:
        held = set(self._row_imgs[row])
        missing = tuple(name for name in names if self._img_of.get(name, -1) not in held)
        cache_id = self._row_id[row]
        assert cache_id is not None
        return Match(
            cache_id=cache_id,
            matched=len(names) - len(missing),
            total=len(names),
            missing=missing,
            size_gib=self._row_size[row],
            created_at=float(self._created[row]),
        )
