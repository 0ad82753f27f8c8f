"""Per-image posting arrays: the rows (caches) that hold one image.

A posting keeps its rows twice: ascending by row number (``view()``, for membership tests with
``searchsorted``; rows are appended in increasing order so this costs nothing to keep), and in
*static rank* order, size ascending then creation time descending (``ordered()``, so that a lookup
can read the best rows of a popular image first and stop early). The static order is rebuilt
lazily: rows appended since the last build form a short unsorted tail that lookups read whole,
and the order is rebuilt once the tail passes a sixteenth of the posting, so a rebuild is paid
for by the appends that caused it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "IntArray", "Posting"]

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_EMPTY = np.empty(0, dtype=np.int32)


class Posting:
    """Rows holding one image: ``rows[:n]`` ascending, ``dead`` of them removed since."""

    __slots__ = ("dead", "n", "order", "order_n", "rows")

    def __init__(self) -> None:
        self.rows: IntArray = np.empty(8, dtype=np.int32)
        self.n = 0
        self.dead = 0
        # ``order`` ranks the live rows of ``rows[:order_n]``; ``rows[order_n:n]`` is the tail.
        self.order: IntArray = _EMPTY
        self.order_n = 0

    @property
    def live(self) -> int:
        return self.n - self.dead

    def append(self, row: int) -> None:
        if self.n == len(self.rows):
            grown = np.empty(2 * len(self.rows), dtype=np.int32)
            grown[: self.n] = self.rows[: self.n]
            self.rows = grown
        self.rows[self.n] = row
        self.n += 1

    def view(self) -> IntArray:
        return self.rows[: self.n]

    def tail(self) -> IntArray:
        return self.rows[self.order_n : self.n]

    def replace(self, rows: IntArray, order: IntArray | None = None) -> None:
        """Keep only ``rows`` (ascending); ``order`` is their static order when known."""
        self.rows = np.empty(max(8, 2 * len(rows)), dtype=np.int32)
        self.rows[: len(rows)] = rows
        self.n = len(rows)
        self.dead = 0
        if order is None:
            self.order, self.order_n = _EMPTY, 0
        else:
            self.order, self.order_n = order, len(rows)

    def ordered(
        self, size: FloatArray, created: FloatArray, alive: BoolArray, min_tail: int
    ) -> IntArray:
        """The static order, rebuilt first when the unsorted tail has grown past both
        ``min_tail`` and a sixteenth of the posting."""
        if self.n - self.order_n > max(min_tail, self.order_n // 16):
            rows = self.view()
            rows = rows[alive[rows]]
            self.order = rows[np.lexsort((-created[rows], size[rows]))]
            self.order_n = self.n
        return self.order

    def filtered(self, alive: BoolArray) -> None:
        """Drop dead rows, keeping the static order valid."""
        rows = self.view()
        order_n_live = int(np.count_nonzero(alive[rows[: self.order_n]]))
        order = self.order[alive[self.order]]
        self.replace(rows[alive[rows]])
        if len(order) == order_n_live:
            self.order, self.order_n = order, order_n_live

    def remapped(self, alive: BoolArray, remap: IntArray) -> None:
        """Renumber rows after the index packed its live rows densely (order is kept)."""
        rows = self.view()
        order_n_live = int(np.count_nonzero(alive[rows[: self.order_n]]))
        order = self.order[alive[self.order]]
        self.replace(remap[rows[alive[rows]]])
        if len(order) == order_n_live:
            self.order, self.order_n = remap[order], order_n_live
