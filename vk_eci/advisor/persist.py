"""The demand record as compact JSON: what the node keeps in its ConfigMap across restarts.

Why a ConfigMap: the record belongs to one node (its pods), must outlive the process and the
pod it runs in, and is small; a ConfigMap in the node's namespace is readable with kubectl,
needs no volume (the chart's root filesystem is read-only and replicas move between machines)
and is granted by name only. ImageCache annotations were the alternative, but demand exists
before any cache does, and user-created caches must never be written to.

Format (``FORMAT_VERSION`` 1), under the key ``demand.json``::

    {"version": 1, "since": 1732838400.0, "savedAt": 1732842000.0,
     "images": [["docker.io/library/redis:7", 12.5, 3, 0.12, 1732841990.0], ...],
     "sets": [[[0, 2], 4.25, 1.5, 1732841990.0, 1732841990.0, ["ns/Deployment/web"]], ...]}

``images``: [normalised reference, mean uncached pull seconds, pulls counted (at most 20),
size in GiB or null, last seen] and, for an image pulled with credentials, a sixth element
``{"namespace": ["pull secret", ...]}`` (names only, never their content; a record without it
reads as before). ``sets``: [indexes into ``images`` (sorted set),
decayed pods, decayed full hits, time of those counts, last seen, workloads]. Times are Unix
seconds. The decay window is not stored: the node's current ``--imagecache-advisor-window``
applies. A record past ``MAX_BYTES`` (well under the API server's 1 MiB object limit) is
stored without its least demanded sets (the node keeps them in memory, within its own bound).
"""

from __future__ import annotations

import json
import math
from typing import Any

from vk_eci.advisor.record import DemandRecord, ImageStat, SetRecord

__all__ = ["FORMAT_VERSION", "KEY", "MAX_BYTES", "StateError", "decode", "encode"]

FORMAT_VERSION = 1
KEY = "demand.json"
MAX_BYTES = 900_000


class StateError(ValueError):
    """The stored record cannot be read; the message says where and why."""


def _num(x: float) -> float:
    return round(x, 3)


def encode(record: DemandRecord, now: float, *, max_bytes: int = MAX_BYTES) -> str:
    """The record as JSON of at most ``max_bytes``: its most demanded sets that fit (with the
    images they name), then statistics of other images while room remains. One pass, sized
    piece by piece: the record is not changed, and a full one encodes in tens of
    milliseconds."""
    window = record.window_s
    ranked = sorted(record.sets.values(),
                    key=lambda r: (-r.decayed(now, window)[0], -r.last_seen, r.images))
    index_width = len(str(max(1, len(record.images) + len(ranked))))
    budget = max_bytes - 200  # the envelope: version, times, brackets
    used = 0
    kept: list[SetRecord] = []
    names: dict[str, int] = {}  # image -> its entry's size, in the order they are added
    for rec in ranked:
        new = {i: len(_dumps(_image_entry(record, i))) + 1 for i in rec.images if i not in names}
        size = (len(_dumps(_set_entry(rec, {}))) + 1 + len(rec.images) * (index_width + 1)
                + sum(new.values()))
        if used + size > budget:
            continue
        used += size
        kept.append(rec)
        names.update(new)
    spare = sorted((s.last_seen, i) for i, s in record.images.items()
                   if s.pulls and i not in names)
    for _, image in reversed(spare):
        size = len(_dumps(_image_entry(record, image))) + 1
        if used + size > budget:
            break
        used += size
        names[image] = size
    order = sorted(names)
    index = {image: n for n, image in enumerate(order)}
    return _dumps({"version": FORMAT_VERSION, "since": record.since, "savedAt": _num(now),
                   "images": [_image_entry(record, i) for i in order],
                   "sets": [_set_entry(rec, index) for rec in kept]})


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _image_entry(record: DemandRecord, image: str) -> list[Any]:
    stat = record.images.get(image) or ImageStat()
    entry: list[Any] = [image, _num(stat.pull_seconds), stat.pulls,
                        None if stat.size_gib is None else _num(stat.size_gib),
                        _num(stat.last_seen)]
    if stat.private:
        entry.append({k: list(v) for k, v in stat.private.items()})
    return entry


def _set_entry(rec: SetRecord, index: dict[str, int]) -> list[Any]:
    return [[index[i] for i in rec.images if i in index], _num(rec.pods), _num(rec.hits),
            _num(rec.at), _num(rec.last_seen), list(rec.workloads)]


def decode(text: str, *, window_hours: float = 6.0, max_sets: int = 500,
           max_workloads: int = 5) -> DemandRecord:
    """The record stored as ``text``; :class:`StateError` when it is not one."""
    try:
        body = json.loads(text)
    except ValueError as e:
        raise StateError(f"not JSON: {e}") from None
    if not isinstance(body, dict):
        raise StateError("not a JSON object")
    if body.get("version") != FORMAT_VERSION:
        raise StateError(f"format version {body.get('version')!r}, this node reads "
                         f"{FORMAT_VERSION}")
    since = body.get("since")
    if since is not None and not _finite(since):
        raise StateError(f"since: {since!r} is not a time")
    record = DemandRecord(window_hours=window_hours, max_sets=max_sets,
                          max_workloads=max_workloads, since=since)
    names: list[str] = []
    for n, item in enumerate(_list(body, "images")):
        if (not isinstance(item, list) or len(item) not in (5, 6)
                or not isinstance(item[0], str)
                or not all(_finite(x) for x in (item[1], item[2], item[4]))
                or not (item[3] is None or _finite(item[3]))
                or (len(item) == 6 and not _private(item[5]))):
            raise StateError(f"images[{n}]: expected [image, pull seconds, pulls, GiB or "
                             "null, last seen] and optionally {namespace: [pull secrets]}")
        names.append(item[0])
        record.images[item[0]] = ImageStat(
            float(item[1]), int(item[2]), None if item[3] is None else float(item[3]),
            float(item[4]), {k: tuple(v) for k, v in (item[5] if len(item) == 6 else {}).items()})
    for n, item in enumerate(_list(body, "sets")):
        if (not isinstance(item, list) or len(item) != 6 or not isinstance(item[0], list)
                or not all(isinstance(i, int) and 0 <= i < len(names) for i in item[0])
                or not all(_finite(x) for x in item[1:5]) or not isinstance(item[5], list)
                or not all(isinstance(w, str) for w in item[5])):
            raise StateError(f"sets[{n}]: expected [image indexes, pods, hits, at, last seen, "
                             "workloads]")
        key = tuple(sorted({names[i] for i in item[0]}))
        if not key:
            continue
        record.sets[key] = SetRecord(key, float(item[1]), float(item[2]), float(item[3]),
                                     float(item[4]), list(item[5])[:max_workloads])
    if len(record.sets) > max_sets:
        record.drop_least(max((r.at for r in record.sets.values()), default=0.0),
                          len(record.sets) - max_sets)
    record.changes = 0
    return record


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise StateError(f"{key}: not a list")
    return value


def _private(x: Any) -> bool:
    return isinstance(x, dict) and all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
        for k, v in x.items())


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
