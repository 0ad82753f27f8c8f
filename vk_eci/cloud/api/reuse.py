"""Group descriptions not rebuilt while ECI answers the same for them (:class:`Reuse`).

The node reads most descriptions again unchanged: a full listing reads every group of the node
each minute, and a group read again for its late events (:mod:`vk_eci.cloud.groups.follow`)
mostly has none. Reading a description into the SDK's models and making it lean (lean.py) costs
about 60 µs a group, and fingerprinting the model built (``hash(repr(model.to_map()))``) as
much again: at 10,000 pods, most of a listing's CPU. So each group of an answer is fingerprinted
as parsed JSON, before the SDK reads it (``hash(repr(...))`` of its dict, about 25 µs), and a
group whose fingerprint is the one its held description was built from reaches the SDK as its
id alone: the held description takes its place. ``prints`` gives the caller each group's
fingerprint, by which the status sync tells an unchanged answer (``StatusChange.fingerprint``).

The transport hands the parsed body over before the SDK reads it
(:class:`vk_eci.cloud.api.transport.Runtime`). A caller that changes a held description
(the provider drops its events once copied) must forget its fingerprint whenever what it
dropped may still be needed: the next answer is then read again in full.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# group id -> (fingerprint of the answer it was built from, the description held), or None
Held = Callable[[str], "tuple[int, Any] | None"]


@dataclass
class Reuse:
    """One read's reuse of held descriptions; see the module docstring."""

    held: Held
    # Filled by the read: group id -> fingerprint of ECI's answer for it (reused or built).
    prints: dict[str, int] = field(default_factory=dict)

    def answered(self, body: dict[str, Any], reused: dict[str, Any]) -> None:
        """Fingerprint each group of one parsed answer; those unchanged are cut down to their
        id in ``body`` and their held description put in ``reused``, by id."""
        groups = body.get("ContainerGroups")
        if not isinstance(groups, list):
            return
        for i, raw in enumerate(groups):
            gid = raw.get("ContainerGroupId") if isinstance(raw, dict) else None
            if not isinstance(gid, str):
                continue
            # repr of the parsed JSON: the server's order of keys, so equal answers print equal.
            print_ = self.prints[gid] = hash(repr(raw))
            held = self.held(gid)
            if held is not None and held[0] == print_:
                reused[gid] = held[1]
                groups[i] = {"ContainerGroupId": gid}
