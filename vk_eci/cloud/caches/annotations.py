"""The image-cache annotations of a pod (docs/IMAGE_CACHES.md), parsed from the pod's own metadata.

Only the pod's ``metadata.annotations`` are read: a Deployment's own annotations never reach its
pods, so nothing here ever looks at owners. Parsing never raises; every bad value becomes an
:class:`InvalidAnnotation` problem naming the key, the value and the reason, which the caller turns
into a Warning event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from vk_eci.cloud.placement.values import InvalidAnnotation, parse_bool

EXPLICIT_KEY = "k8s.aliyun.com/eci-image-snapshot-id"
EXPLICIT_ALIAS = "k8s.aliyun.com/eci-imc-id"
AUTO_KEY = "k8s.aliyun.com/eci-image-cache"
AUTO_ALIAS = "k8s.aliyun.com/eci-auto-imc"
PERFECT_MATCH_KEY = "k8s.aliyun.com/imc-perfect-match"
MATCH_COUNT_KEY = "k8s.aliyun.com/imc-match-count-request"
FAIL_ON_CREATE_ERR_KEY = "k8s.aliyun.com/pod-fail-on-create-err"

# What the node writes back on the pod: the cache it chose and how much of the pod it covers.
CHOSEN_CACHE_ANNOTATION = "vk-eci.io/image-cache"
CHOSEN_MATCH_ANNOTATION = "vk-eci.io/image-cache-match"

# ECI ids are "imc-" and lower-case alphanumerics (imc-2zeditzeoemfhqor4rf8); upper case is
# accepted because ECI treats ids case-insensitively in practice and rejecting it helps nobody.
_CACHE_ID = re.compile(r"^imc-[A-Za-z0-9]{1,64}$")
_MAX_COUNT = 1000  # far above the 20 images a cache may hold: a bigger count is a typo

Mode = Literal["explicit", "auto"]


@dataclass(frozen=True)
class CacheRequest:
    """What the pod asks for, image-cache-wise.

    ``explicit_id`` is set when the pod names a cache (well-formed or not: ``explicit_valid``
    says which), ``auto`` when it asks for automatic match. ``notes`` are Normal-event texts
    (explicit over auto, key over alias), ``problems`` Warning-event ones.
    """

    explicit_id: str | None = None
    explicit_key: str | None = None
    explicit_valid: bool = True
    auto: bool = False
    auto_key: str | None = None
    perfect_match: bool = False
    match_count: int | None = None
    fail_on_create_err: bool = False
    problems: tuple[InvalidAnnotation, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def mode(self) -> Mode | None:
        """``explicit`` (it wins over auto), ``auto``, or None when the pod asks for no cache."""
        if self.explicit_id is not None:
            return "explicit"
        if self.auto:
            return "auto"
        return None

    @property
    def min_matched(self) -> int:
        """Images a cache must hold to be matched automatically (perfect match is separate)."""
        return max(1, self.match_count or 1)


def _first(annotations: Mapping[str, str], key: str, alias: str,
           notes: list[str]) -> tuple[str | None, str | None]:
    """The value of ``key``, else of ``alias``; a note when both are set and disagree."""
    if key in annotations:
        if alias in annotations and annotations[alias].strip() != annotations[key].strip():
            notes.append(f'annotation {key}="{annotations[key]}" wins over its alias '
                         f'{alias}="{annotations[alias]}"')
        return key, annotations[key]
    if alias in annotations:
        return alias, annotations[alias]
    return None, None


def _bool_value(annotations: Mapping[str, str], key: str,
                problems: list[InvalidAnnotation]) -> bool:
    if key not in annotations:
        return False
    parsed = parse_bool(annotations[key])
    if parsed is None:
        problems.append(InvalidAnnotation(key, annotations[key], 'expected "true" or "false"'))
        return False
    return parsed


def parse_cache_request(annotations: Mapping[str, str]) -> CacheRequest:
    """Read the pod's image-cache annotations; never raises."""
    problems: list[InvalidAnnotation] = []
    notes: list[str] = []

    explicit_key, explicit_raw = _first(annotations, EXPLICIT_KEY, EXPLICIT_ALIAS, notes)
    explicit_id: str | None = None
    explicit_valid = True
    if explicit_key is not None and explicit_raw is not None:
        candidate = explicit_raw.strip()
        if not candidate:
            # An empty value (a template that rendered nothing) asks for no cache at all.
            problems.append(InvalidAnnotation(explicit_key, explicit_raw,
                                              "empty; expected an image cache id imc-…"))
            explicit_key = None
        else:
            explicit_id = candidate
            if not _CACHE_ID.match(candidate):
                explicit_valid = False
                problems.append(InvalidAnnotation(
                    explicit_key, explicit_raw,
                    "expected an image cache id like imc-2zeditzeoemfhqor4rf8"))

    auto_key, auto_raw = _first(annotations, AUTO_KEY, AUTO_ALIAS, notes)
    auto = False
    if auto_key is not None and auto_raw is not None:
        parsed = parse_bool(auto_raw)
        if parsed is None:
            problems.append(InvalidAnnotation(auto_key, auto_raw, 'expected "true" or "false"'))
            auto_key = None
        else:
            auto = parsed

    perfect = _bool_value(annotations, PERFECT_MATCH_KEY, problems)

    match_count: int | None = None
    if MATCH_COUNT_KEY in annotations:
        raw = annotations[MATCH_COUNT_KEY]
        text = raw.strip()
        if not text.isascii() or not text.isdigit():
            problems.append(InvalidAnnotation(MATCH_COUNT_KEY, raw,
                                              "expected a whole number of images, 0 or more"))
        elif int(text) > _MAX_COUNT:
            problems.append(InvalidAnnotation(MATCH_COUNT_KEY, raw,
                                              f"more than {_MAX_COUNT} images"))
        else:
            match_count = int(text)

    fail_on_err = _bool_value(annotations, FAIL_ON_CREATE_ERR_KEY, problems)

    if explicit_id is not None and auto:
        notes.append(f'annotation {explicit_key}="{explicit_id}" wins over '
                     f'{auto_key}="{auto_raw}": automatic match is skipped')

    return CacheRequest(
        explicit_id=explicit_id, explicit_key=explicit_key, explicit_valid=explicit_valid,
        auto=auto, auto_key=auto_key, perfect_match=perfect, match_count=match_count,
        fail_on_create_err=fail_on_err, problems=tuple(problems), notes=tuple(notes))
