"""What the reconcile steps (create, update, finalize, owner) need of the controller, as
Protocols, and how the controller runs (:class:`ImageCacheSettings`).

The controller satisfies :class:`StepContext` structurally and passes itself to each step, so
the steps never import the controller that imports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vk_eci.cloud.placement.node import Placement
from vk_eci.cluster.imagecaches.observe import EciView
from vk_eci.cluster.imagecaches.secrets import AdvisorGrants, SecretPolicy
from vk_eci.cluster.imagecaches.spec import ImageCacheSpec, RegistryCredential


@dataclass(frozen=True)
class ImageCacheSettings:
    """How the controller runs. Durations are seconds."""

    leader_election: bool = True
    lease_name: str = "vk-eci-imagecache-controller"
    lease_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    fast_poll: float = 2.0       # while a cache is being built or updated
    slow_poll: float = 60.0      # once every cache is settled
    secret_retry: float = 15.0   # look again at a missing or malformed secret
    create_retry: float = 60.0   # look again after ECI refused a create for good
    workers: int = 4
    max_retries: int = 30
    watch_timeout: int = 300     # server-side watch timeout, then re-list
    # Where ECI runs the builder: CreateImageCache needs a security group and a vSwitch.
    placement: Placement = field(default_factory=Placement)
    # Tagged on every cache the controller creates; it touches no cache of another cluster.
    cluster_name: str = "default"
    # When cluster_name was derived: the old default, accepted on caches whose object UID
    # matches (made by an earlier version; see owner.not_ours).
    legacy_cluster_name: str = ""
    # Which pull secrets an object may use (cluster/imagecaches/secrets.py): by default none.
    secret_policy: SecretPolicy = field(default_factory=SecretPolicy)
    # The pull secrets this process's cache advisor granted its own objects (None: no advisor).
    grants: AdvisorGrants | None = None


class ImageCacheApi(Protocol):
    """The ECI image-cache calls the steps make (:class:`vk_eci.cloud.api.client.EciClient`)."""

    async def describe_image_caches(self, *, ids: Sequence[str] | None = None,
                                    name: str | None = None) -> list[Any]: ...

    async def create_image_cache(self, req: Any) -> str: ...

    async def update_image_cache(self, req: Any) -> None: ...

    async def delete_image_cache(self, cache_id: str) -> None: ...


class StepContext(Protocol):
    """The controller as a reconcile step sees it: ECI, the view of ECI's caches, the settings,
    and the shared writes to the API server."""

    @property
    def eci(self) -> ImageCacheApi: ...

    @property
    def view(self) -> EciView: ...

    @property
    def settings(self) -> ImageCacheSettings: ...

    async def patch_status(self, obj: dict[str, Any],
                           patch: Mapping[str, Any]) -> dict[str, Any]: ...

    async def set_finalizers(self, obj: dict[str, Any],
                             finalizers: list[str]) -> dict[str, Any]: ...

    async def event(self, obj: Mapping[str, Any], type: str, reason: str,
                    message: str) -> None: ...

    async def set_annotation(self, obj: dict[str, Any], key: str,
                             value: str | None) -> dict[str, Any]: ...

    async def invalid(self, obj: dict[str, Any], status: Mapping[str, Any], reason: str,
                      message: str, retry: float | None) -> float | None: ...

    async def credentials(self, spec: ImageCacheSpec) -> list[RegistryCredential]: ...

    def not_ours(self, cache: Any, name: str, uid: str) -> str | None: ...
