"""``Limit`` + ``NextToken`` paging: the token is the offset into the filtered list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from vk_eci.emulator.errors import invalid

T = TypeVar("T")


def page(items: Sequence[T], limit: int, token: str | None) -> tuple[list[T], str]:
    start = 0
    if token:
        try:
            start = int(token)
        except ValueError:
            raise invalid("NextToken", f"{token!r} was not issued by this service") from None
        if start < 0 or start > len(items):
            raise invalid("NextToken", f"{token!r} is out of range")
    end = start + limit
    return list(items[start:end]), (str(end) if end < len(items) else "")
