"""Where this node's ECI resources go (region, vSwitches, security group, zone): one record
from the flags to every request that needs it, container groups and image caches alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    """Where this node's ECI resources go: region, vSwitches, security group, zone. They travel
    together from the flags to every request that needs them (groups, image caches)."""

    region_id: str | None = None
    vswitch_ids: tuple[str, ...] = ()  # a group may use any (in order); one builds a cache
    security_group_id: str | None = None
    zone_id: str | None = None

    @property
    def vswitch_id(self) -> str | None:
        """The vSwitch of a single-vSwitch request (CreateImageCache): the first."""
        return self.vswitch_ids[0] if self.vswitch_ids else None
