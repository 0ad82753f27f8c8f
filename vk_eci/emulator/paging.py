"""``Limit`` + ``NextToken`` paging with a cursor, not an offset.

The token names the sequence number of the last item returned, and the next page starts right
after that item. An offset skipped or repeated items, or pointed past the end and was refused,
when the filtered list changed between pages (a ``SinceSecond`` window moving on, a group
ending): what a client paging through a live account sees all the time. When the cursor's item
is gone, the page starts at the first item created after it (group listings are in creation
order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from vk_eci.emulator.errors import invalid


class Sequenced(Protocol):
    @property
    def seq(self) -> int: ...


T = TypeVar("T", bound=Sequenced)

_PREFIX = "after-"


def page(items: Sequence[T], limit: int, token: str | None) -> tuple[list[T], str]:
    start = _start(items, _cursor(token)) if token else 0
    chosen = list(items[start:start + limit])
    more = start + limit < len(items)
    return chosen, (f"{_PREFIX}{chosen[-1].seq}" if more and chosen else "")


def _start(items: Sequence[T], after: int) -> int:
    for i, item in enumerate(items):
        if item.seq == after:
            return i + 1
    return next((i for i, item in enumerate(items) if item.seq > after), len(items))


def _cursor(token: str) -> int:
    digits = token.removeprefix(_PREFIX)
    if token == digits or not digits.isdigit():
        raise invalid("NextToken", f"{token!r} was not issued by this service")
    return int(digits)
