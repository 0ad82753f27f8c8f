"""The emulator's in-memory world: groups, caches, client tokens, registries, id generation."""

from __future__ import annotations

import heapq
import random
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vk_eci.emulator.caches import CacheStore
from vk_eci.emulator.catalog import Registries
from vk_eci.emulator.clock import Clock
from vk_eci.emulator.exec_ws import ExecSession
from vk_eci.emulator.groups import Group, stop
from vk_eci.emulator.groups import status as group_status
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.placement import preempt
from vk_eci.emulator.shell import FileSystem
from vk_eci.emulator.timing import Timing

if TYPE_CHECKING:
    from vk_eci.emulator.livegroups import LiveWorld

ZONE_SUFFIXES = ("h", "i", "j", "k")
AGE_SWEEP_S = 10.0
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class TokenRecord:
    fingerprint: tuple[tuple[str, str], ...]
    resource_id: str


@dataclass
class State:
    region: str
    clock: Clock
    timing: Timing
    seed: int = 0
    model: EciModel = field(default_factory=EciModel)
    groups: dict[str, Group] = field(default_factory=dict)
    # (key, value) -> ids in creation order: tag filters never scan every group.
    by_tag: dict[tuple[str, str], dict[str, None]] = field(default_factory=dict)
    tokens: dict[tuple[str, str], TokenRecord] = field(default_factory=dict)
    registries: Registries = field(default_factory=Registries)
    fixed_ips: dict[str, str] = field(default_factory=dict)  # group name -> its fixed IP
    caches: CacheStore = field(init=False)
    # Exec WebSocket addresses handed out (token -> session) and each container's files.
    exec_sessions: dict[str, ExecSession] = field(default_factory=dict)
    filesystems: dict[tuple[str, str], FileSystem] = field(default_factory=dict)
    # (gone at, id) of Terminating groups: removed once the clock passes their end.
    stopping: list[tuple[float, str]] = field(default_factory=list)
    # The real network and processes of --group-network (livegroups.py), or None.
    live: LiveWorld | None = None
    _seq: int = 0
    _aged_at: float | None = None

    def __post_init__(self) -> None:
        self.caches = CacheStore(self.timing)
        self._rng = random.Random(self.seed)

    @property
    def zones(self) -> list[str]:
        return [f"{self.region}-{s}" for s in ZONE_SUFFIXES]

    def now(self) -> float:
        return self.clock.now()

    def new_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choices(_ALPHABET, k=20))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def ip_for(self, seq: int) -> str:
        if self.live is not None:
            return self.live.next_ip()
        return f"192.168.{(seq >> 8) & 0xFF}.{seq & 0xFF or 1}"

    def add_group(self, group: Group) -> None:
        self.groups[group.id] = group
        for tag in group.tags:
            self.by_tag.setdefault(tag, {})[group.id] = None

    def retag(self, group: Group, tags: list[tuple[str, str]]) -> None:
        """Give ``group`` these tags (``TagResources``): the tag index and the rendered
        answers follow."""
        for tag in group.tags:
            ids = self.by_tag.get(tag)
            if ids is not None:
                ids.pop(group.id, None)
                if not ids:
                    del self.by_tag[tag]
        group.tags = tags
        for tag in tags:
            self.by_tag.setdefault(tag, {})[group.id] = None
        group.static_render = group.json_cache = None

    def stop_group(self, group: Group) -> None:
        """Delete ``group`` honouring its grace period (see ``groups.stop``)."""
        if group.gone_at is not None:
            return  # already Terminating: a repeated delete is accepted and changes nothing
        if self.live is not None:
            self.live.stop(group)
        gone = stop(group, self.timing, self.now())
        heapq.heappush(self.stopping, (gone, group.id))
        self.reap()

    def preempt(self, group_id: str) -> float:
        """Reclaim a spot group as ECI does (warning first; see ``placement.preempt``)."""
        group = self.groups.get(group_id)
        if group is None:
            raise KeyError(group_id)
        return preempt(group, self.timing, self.now())

    def reap(self) -> None:
        """Remove the groups whose termination has ended by now (lazy, like every state)."""
        now = self.now()
        for ended in self.live.take_ended() if self.live is not None else []:
            heapq.heappush(self.stopping, ended)
        while self.stopping and self.stopping[0][0] <= now:
            _, group_id = heapq.heappop(self.stopping)
            self.remove_group(group_id)
        self.age_ended(now)

    def age_ended(self, now: float) -> None:
        """Forget ended groups as ECI does (the model's ``terminal_retention``): every ended
        group is kept ``terminal_keep_s`` after it ended; of those ended longer ago, only the
        ``terminal_keep_count`` that ended last. A sweep reads every group's status, so it
        runs at most once per ``AGE_SWEEP_S`` of the clock (an hour's bound, give or take)."""
        model = self.model
        if model.terminal_retention != "eci" or (
                self._aged_at is not None and now - self._aged_at < AGE_SWEEP_S):
            return
        self._aged_at = now
        old: list[tuple[float, str]] = []
        for group in self.groups.values():
            if group.gone_at is not None:
                continue  # deleted: the reaper removes it when its termination ends
            st, final_at = group_status(group, self.timing, now)
            if st in ("Succeeded", "Failed", "Expired") and final_at is not None \
                    and now - final_at >= self.timing.d(model.terminal_keep_s):
                old.append((final_at, group.id))
        old.sort(reverse=True)
        for _, group_id in old[model.terminal_keep_count:]:
            self.remove_group(group_id)

    def remove_group(self, group_id: str) -> Group | None:
        group = self.groups.pop(group_id, None)
        if group is not None:
            if self.live is not None:
                self.live.remove(group)
            for c in group.containers:  # a container's files go with it
                self.filesystems.pop((group_id, c.name), None)
            for tag in group.tags:
                ids = self.by_tag.get(tag)
                if ids is not None:
                    ids.pop(group_id, None)
                    if not ids:
                        del self.by_tag[tag]
        return group
