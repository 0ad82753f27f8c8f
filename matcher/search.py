"""Lookups over postings: the best cache (early-stopping) and the full ranking.

``best_row`` finds the best row without reading whole postings of popular images. The pod's
postings are taken smallest first. A cache holding ``m`` of the pod's ``k`` images appears in at
least one of the ``k - m + 1`` smallest postings (it misses at most ``k - m`` of them), so for
``m = k, k-1, ..., need`` the candidates for "holds ``m``" are the rows of those postings.

The smallest postings (up to a budget of entries) are read whole first, and every level whose
candidates lie only in them is settled at once. After that, each level adds one posting; rows
read so far keep their exact counts in a pool. The new posting is read in static rank order (size
ascending, creation descending) in growing chunks, and the search stops as soon as the best
candidate ranks strictly before the next unread row, since every later row ranks after it.
Levels go from the top, so the first level with a candidate holds the highest overlap that any
eligible cache has.

``ranked_rows`` counts every row of every posting of the pod (vectorised) and sorts; it serves
``rank`` and ``explain``, where the caller asks for more than the winner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from matcher.postings import FloatArray, IntArray, Posting

__all__ = ["Columns", "best_row", "ranked_rows"]

_FIRST_CHUNK = 64
_SMALL_BUDGET = 1024  # posting entries read whole before the level-by-level search
_CHUNK_GROWTH = 8


@dataclass(slots=True)
class Columns:
    """The index's per-row arrays, as they are at the time of one lookup."""

    size: FloatArray
    created: FloatArray
    expires: FloatArray
    ready: np.ndarray[tuple[int], np.dtype[np.bool_]]
    alive: np.ndarray[tuple[int], np.dtype[np.bool_]]
    row_id: list[str | None]
    counts: IntArray  # scratch, zero between lookups
    marks: IntArray  # scratch, any content
    images: npt.NDArray[np.int32]  # (rows, width): each row's image ids, padded with -1
    marker: IntArray  # per image id, 1 for the pod's images during a lookup; last slot stays 0
    small_budget: int = _SMALL_BUDGET
    first_chunk: int = _FIRST_CHUNK


def best_row(
    posts: list[Posting], ids: list[int], need: int, now: float, cols: Columns
) -> tuple[int, int]:
    """The best eligible row holding at least ``need`` of the images, and entries read.

    ``ids`` are the images of ``posts`` (same order). Returns ``(-1, read)`` when no row
    qualifies.
    """
    k = len(posts)
    if k < need:
        return -1, 0
    marker = cols.marker
    marker[ids] = 1
    try:
        return _best_row(sorted(posts, key=lambda p: p.live), need, now, cols)
    finally:
        marker[ids] = 0


def _best_row(posts: list[Posting], need: int, now: float, cols: Columns) -> tuple[int, int]:
    k = len(posts)
    # The smallest postings are read whole, in one pass: levels whose candidates lie only in
    # them are settled from that pass without further numpy calls.
    small, budget = 0, 0
    while small < k and budget + posts[small].n <= cols.small_budget:
        budget += posts[small].n
        small += 1
    pool_rows: list[IntArray] = []
    pool_hits: list[IntArray] = []
    read = 0
    if small:
        cand = np.concatenate([p.view() for p in posts[:small]]) if small > 1 else posts[0].view()
        read += len(cand)
        cand = cand[cols.ready[cand] & (cols.expires[cand] > now)]
        if len(cand):
            hits = _hits(cand, cols)
            top = int(hits.max())
            if top >= max(need, k - small + 1):
                return _winner([cand[hits == top]], -1, cols), read
            pool_rows.append(cand)
            pool_hits.append(hits)
    for m in range(k - small, need - 1, -1):
        post = posts[k - m]
        order = post.ordered(cols.size, cols.created, cols.alive, cols.first_chunk)
        found = [rows[hits == m] for rows, hits in zip(pool_rows, pool_hits, strict=True)]
        lo, hi = 0, cols.first_chunk
        while True:
            cand = order[lo:hi]
            if lo == 0:
                tail = post.tail()
                if len(tail):
                    cand = np.concatenate((cand, tail))
            read += len(cand)
            cand = cand[cols.ready[cand] & (cols.expires[cand] > now)]
            if m > 1 and len(cand):
                hits = _hits(cand, cols)
                pool_rows.append(cand)
                pool_hits.append(hits)
                cand = cand[hits >= m]
            if len(cand):
                found.append(cand)
            edge = int(order[hi]) if len(order) > hi else -1  # first unread row
            row = _winner(found, edge, cols)
            if row >= 0:
                return row, read
            if edge < 0:
                break
            lo, hi = hi, hi * _CHUNK_GROWTH
    return -1, read


def _hits(cand: IntArray, cols: Columns) -> IntArray:
    """How many of the pod's images each candidate row holds (exactly: the pool relies on it).

    Each row's images are a row of ``images``, padded with -1, which ``marker`` maps to 0.
    """
    hits: IntArray = cols.marker[cols.images[cand]].sum(axis=1, dtype=np.int32)
    return hits


def _winner(found: list[IntArray], edge: int, cols: Columns) -> int:
    """The best of ``found`` if nothing from ``edge`` on in static order can beat or tie it."""
    found = [f for f in found if len(f)]
    if not found:
        return -1
    rows = found[0] if len(found) == 1 else np.concatenate(found)
    size = cols.size[rows]
    smin = size.min()
    rows = rows[size == smin]
    created = cols.created[rows]
    cmax = created.max()
    if edge >= 0:
        esize, ecreated = cols.size[edge], cols.created[edge]
        if not (esize > smin or (esize == smin and ecreated < cmax)):
            return -1  # the unread part may hold an equal or better row
    rows = rows[created == cmax]
    if len(rows) == 1:
        return int(rows[0])
    return min({int(r) for r in rows}, key=lambda r: cols.row_id[r] or "")


def ranked_rows(
    posts: list[Posting], need: int, now: float, cols: Columns, limit: int
) -> tuple[list[tuple[int, int]], int]:
    """Up to ``limit`` best ``(row, matched)`` pairs, best first, and entries read."""
    if len(posts) < need or limit == 0:
        return [], 0
    counts = cols.counts
    parts = []
    for post in posts:
        rows = post.view()
        counts[rows] += 1  # rows are distinct within one posting
        parts.append(rows)
    allrows = np.concatenate(parts) if len(parts) > 1 else parts[0]
    c = counts[allrows]
    counts[allrows] = 0
    # Keep one entry per row: whichever position's write survives is read back at that position.
    marks = cols.marks
    positions = np.arange(len(allrows), dtype=np.int32)
    marks[allrows] = positions
    keep = (marks[allrows] == positions) & (c >= need)
    rows = allrows[keep]
    c = c[keep]
    ok = cols.ready[rows] & (cols.expires[rows] > now)
    rows, c = rows[ok], c[ok]
    size = cols.size[rows]
    created = cols.created[rows]
    order = np.lexsort((-created, size, -c))
    if len(order) > limit:
        last = order[limit - 1]
        rest = order[limit:]
        tied = (c[rest] == c[last]) & (size[rest] == size[last]) & (created[rest] == created[last])
        n_tied = len(rest) if tied.all() else int(np.argmin(tied))
        order = order[: limit + n_tied]
    # Exact ties on (count, size, created) are broken by cache id here, over the few rows that
    # can still reach the top ``limit``.
    keyed = sorted(
        (-int(c[i]), float(size[i]), -float(created[i]), cols.row_id[int(rows[i])] or "", i)
        for i in order.tolist()
    )
    return [(int(rows[key[4]]), -key[0]) for key in keyed[:limit]], len(allrows)
