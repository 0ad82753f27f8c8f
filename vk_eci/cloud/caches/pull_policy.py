"""Image pull policy for pods started from an image cache (docs/IMAGE_CACHES.md).

A container that pulls ``Always`` makes ECI fetch its image again even though the cache's disk
already holds it, which throws away most of the cache's saving. So when a pod starts from a
cache, every container whose *effective* policy is ``Always`` (set, or unset with tag ``latest``
or no tag, as Kubernetes defaults it) is sent as ``IfNotPresent``. The operator may choose to be
only warned (``warn``) or to leave policies alone (``off``).

Refresh: a cache of mutable tags (no digest) holds what they meant when it was built or last
refreshed. Once that is longer ago than its refresh period (its ImageCache object's
``vk-eci.io/refresh-period`` when set, else the node's ``--imagecache-refresh-period``), a
container of such an image keeps ``Always`` (ECI then pulls what the tag means now, and the
cache still serves its unchanged layers): :func:`stale_cache`, :func:`kept_for_age`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ALWAYS = "Always"
IF_NOT_PRESENT = "IfNotPresent"


class PullPolicyMode(StrEnum):
    OVERRIDE = "override"
    WARN = "warn"
    OFF = "off"

    @classmethod
    def parse(cls, text: str) -> PullPolicyMode:
        """From the setting; ``rewrite`` (the config's word for it) means ``override``."""
        value = text.strip().lower()
        if value == "rewrite":
            return cls.OVERRIDE
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"image pull policy mode {text!r}: expected override (or rewrite), "
                             f"warn or off") from None


@dataclass(frozen=True)
class ContainerImage:
    """One container (init or app) as the pull-policy rule sees it."""

    name: str
    image: str
    pull_policy: str | None = None
    init: bool = False


@dataclass(frozen=True)
class PullPolicyPlan:
    """What to send: ``overrides`` maps container name → policy for ECI; ``event`` is
    ``(type, reason, message)`` or None when nothing is worth telling."""

    overrides: dict[str, str] = field(default_factory=dict)
    containers: tuple[str, ...] = ()
    event: tuple[str, str, str] | None = None


def _has_digest(image: str) -> bool:
    return "@" in image


def _tag_of(image: str) -> str | None:
    """The tag of ``image`` or None; a ``:`` before the last ``/`` is a registry port."""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return None


def mutable(image: str) -> bool:
    """Whether the reference may mean other content later: a tag, not a digest."""
    return not _has_digest(image.strip())


def stale_cache(created_at: float, now: float, period: float) -> bool:
    """Whether a cache built at ``created_at`` is older than the refresh ``period`` (0: never;
    an unknown creation time counts as fresh, as before)."""
    return period > 0 and created_at > 0 and now - created_at > period


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def kept_for_age(containers: Sequence[ContainerImage], cache_id: str, age: float,
                 period: float) -> tuple[str, str, str] | None:
    """The Normal event for containers that keep ``Always`` because the cache is older than
    the refresh period (None: none does)."""
    kept = [c for c in containers if mutable(c.image)
            and effective_pull_policy(c.image, c.pull_policy) == ALWAYS]
    if not kept:
        return None
    return ("Normal", "ImagePullPolicyKept",
            f"image cache {cache_id} was built or last refreshed {_hours(age)} ago, more than "
            f"its refresh period "
            f"({_hours(period)}): containers {_names(kept)} keep pulling Always, so their "
            f"mutable tags are pulled as they are now")


def effective_pull_policy(image: str, policy: str | None) -> str:
    """The policy Kubernetes applies: the explicit one, else ``Always`` for ``:latest`` or an
    untagged image (without a digest), else ``IfNotPresent``."""
    if policy:
        return policy
    if _has_digest(image.strip()):
        return IF_NOT_PRESENT
    tag = _tag_of(image.strip())
    return ALWAYS if tag is None or tag == "latest" else IF_NOT_PRESENT


def _get(obj: Any, attr: str, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, attr, None)


def containers_of(pod: Any) -> list[ContainerImage]:
    """Init then app containers of a ``V1Pod`` (or the same as a plain dict)."""
    spec = _get(pod, "spec", "spec")
    if spec is None:
        return []
    out: list[ContainerImage] = []
    for attr, key, init in (("init_containers", "initContainers", True),
                            ("containers", "containers", False)):
        for c in _get(spec, attr, key) or []:
            out.append(ContainerImage(
                name=str(_get(c, "name", "name") or ""),
                image=str(_get(c, "image", "image") or ""),
                pull_policy=_get(c, "image_pull_policy", "imagePullPolicy"),
                init=init))
    return out


def _names(containers: Sequence[ContainerImage]) -> str:
    return ", ".join(f"{c.name} (init)" if c.init else c.name for c in containers)


def plan_pull_policy(containers: Sequence[ContainerImage], cache_id: str | None,
                     mode: PullPolicyMode = PullPolicyMode.OVERRIDE,
                     keep_always: Callable[[str], bool] | None = None) -> PullPolicyPlan:
    """What to change when the pod starts from ``cache_id`` (None: no cache, nothing changes).

    ``keep_always(image)`` True: the container keeps ``Always`` whatever the mode (its registry
    needs credentials, and every start must authenticate, as AlwaysPullImages intends)."""
    if cache_id is None or mode is PullPolicyMode.OFF:
        return PullPolicyPlan()
    always = [c for c in containers if effective_pull_policy(c.image, c.pull_policy) == ALWAYS
              and not (keep_always is not None and keep_always(c.image))]
    if not always:
        return PullPolicyPlan()
    names = tuple(c.name for c in always)
    if mode is PullPolicyMode.WARN:
        return PullPolicyPlan(containers=names, event=(
            "Warning", "ImagePullPolicyAlways",
            f"containers {_names(always)} pull with Always, so ECI pulls their images again "
            f"despite image cache {cache_id}; set imagePullPolicy: IfNotPresent "
            f"(the node's pull-policy mode is warn, so they are sent unchanged)"))
    return PullPolicyPlan(
        overrides=dict.fromkeys(names, IF_NOT_PRESENT), containers=names,
        event=("Normal", "ImagePullPolicyOverridden",
               f"pod starts from image cache {cache_id}: pull policy Always sent to ECI as "
               f"IfNotPresent for containers {_names(always)}"))
