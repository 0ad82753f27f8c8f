"""What the image-cache choice for a pod says (:class:`CacheDecision`), the events it plans,
the operator settings it is made under, and the error of a pod kept waiting for its cache.

An explicit cache that cannot be used (unknown, not Ready, failed, expired) *blocks* the pod: the
decision says so and :meth:`CacheDecision.raise_if_blocked` raises :class:`ImageCacheUnavailable`
(a :class:`Retryable`), which the pod controller retries — or turns into ``Failed`` when the pod
has ``pod-fail-on-create-err``. The pod never silently starts without the cache it asked for.

Apart from :mod:`vk_eci.cloud.caches.choice` (how the decision is reached) so that the result's
vocabulary reads on its own; the choice module still exports these names for its callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vk_eci.cloud.api.errors import InvalidInput, Permanent, Retryable
from vk_eci.cloud.caches.annotations import Mode
from vk_eci.cloud.caches.pull_policy import PullPolicyMode
from vk_eci.cloud.translation.context import CacheDecision as TranslateCache

Result = Literal["hit", "partial", "miss", "not_ready", "not_found", "not_permitted"]
NORMAL = "Normal"
WARNING = "Warning"
# The node's own decision events. ECI writes SuccessfulHitImageCache / ImageCacheMissed itself
# (copied onto the pod): those say what ECI used, these what the node chose.
CHOSEN = "ImageCacheChosen"
NOT_CHOSEN = "NoImageCacheChosen"
# An explicit cache holding images of a registry the pod has no credentials for.
NOT_PERMITTED = "ImageCacheNotPermitted"


@dataclass(frozen=True)
class CacheChoiceSettings:
    """Operator settings (``vk-eci run`` flags)."""

    pull_policy_mode: PullPolicyMode = PullPolicyMode.OVERRIDE
    # On an automatic miss, let ECI match server-side and build a cache for next time.
    auto_create_on_miss: bool = True
    # Retry hint for a pod waiting on its explicit cache (the controller may back off more).
    explicit_retry_seconds: float = 5.0
    # Registries the operator says need credentials (docs/IMAGE_CACHES.md, "Private images
    # stay private"): canonical hosts, as ``provenance.registry_of_server`` gives them.
    private_registries: frozenset[str] = frozenset()
    # Past this age (seconds; 0: never) a cache's mutable tags may have moved on: their
    # containers keep pulling Always (docs/IMAGE_CACHES.md, "Refresh and purge").
    refresh_period: float = 86400.0


@dataclass(frozen=True)
class PlannedEvent:
    """A Kubernetes event to emit on the pod."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class CacheDecision:
    """Everything the provider needs to create the pod with (or without) a cache."""

    mode: Mode | None = None
    result: Result | None = None
    cache_id: str | None = None
    image_snapshot_id: str | None = None
    auto_match_image_cache: bool = False
    matched: int = 0
    total: int = 0
    missing: tuple[str, ...] = ()
    size_gib: int | None = None
    runner_up: str | None = None
    reason: str = ""
    blocked: bool = False
    cache_state: str | None = None
    invalid: bool = False
    events: tuple[PlannedEvent, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    pull_policy_overrides: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    fail_on_create_err: bool = False
    # A constrained pod missed: the node builds a cache of its images for the next such pod.
    build_cache: bool = False

    def to_context(self) -> TranslateCache:
        """What translation needs of it (``TranslateContext.cache``)."""
        return TranslateCache(image_snapshot_id=self.image_snapshot_id,
                              auto_match_image_cache=self.auto_match_image_cache,
                              pull_policy_overrides=dict(self.pull_policy_overrides))

    @property
    def match(self) -> str:
        return f"{self.matched}/{self.total}"

    def raise_if_blocked(self, pod_ref: str, *, fail: bool = False) -> None:
        """Raise when the pod must not be created now (see the module docstring).

        ``fail`` (the pod's ``pod-fail-on-create-err``) makes it a :class:`Permanent` error,
        so that the controller marks the pod Failed at once instead of waiting.
        """
        if not self.blocked:
            return
        if self.invalid:
            raise InvalidInput(f"pod {pod_ref}", self.reason, code="InvalidAnnotation")
        code = {"not_found": "ImageCacheNotFound",
                "not_permitted": NOT_PERMITTED}.get(self.result or "", "ImageCacheNotReady")
        if fail:
            raise Permanent(code, self.reason)
        raise ImageCacheUnavailable(code, self.reason, cache_id=self.cache_id or "",
                                    state=self.cache_state or "", retry_after=self.retry_after)


class ImageCacheUnavailable(Retryable):
    """The pod's explicit cache cannot be used yet: keep the pod Pending and try again."""

    def __init__(self, code: str, message: str, *, cache_id: str, state: str,
                 retry_after: float | None = None) -> None:
        self.cache_id = cache_id
        self.state = state
        super().__init__(code, message, retry_after=retry_after)
