"""The result of a cache lookup, able to say why it won."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Match"]


@dataclass(frozen=True, slots=True)
class Match:
    """One candidate cache for a pod.

    ``matched`` of the pod's ``total`` distinct normalised images are in the cache; ``missing``
    lists the others (normalised, in the pod's order).
    """

    cache_id: str
    matched: int
    total: int
    missing: tuple[str, ...]
    size_gib: int
    created_at: float

    @property
    def complete(self) -> bool:
        """True when the cache holds every image of the pod."""
        return not self.missing

    def sort_key(self) -> tuple[int, int, float, str]:
        """The ranking (overlap, size, creation time, id) as a key: smaller sorts first (better)."""
        return (-self.matched, self.size_gib, -self.created_at, self.cache_id)

    def explain(self, runner_up: Match | None = None) -> str:
        """A one-line account of this choice, and of why ``runner_up`` lost to it."""
        created = datetime.fromtimestamp(self.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = (
            f"cache {self.cache_id} holds {self.matched} of {self.total} images, "
            f"{self.size_gib} GiB, created {created}"
        )
        if self.missing:
            text += "; missing " + ", ".join(self.missing)
        if runner_up is None:
            return text + "; no runner-up"
        return (
            f"{text}; runner-up {runner_up.cache_id} ({runner_up.matched} of "
            f"{runner_up.total} images, {runner_up.size_gib} GiB) "
            f"lost on {self._decider(runner_up)}"
        )

    def _decider(self, other: Match) -> str:
        if other.matched != self.matched:
            return "images matched"
        if other.size_gib != self.size_gib:
            return "size (smaller wins)"
        if other.created_at != self.created_at:
            return "creation time (newer wins)"
        return "cache id (ascending)"
