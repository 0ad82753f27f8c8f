"""The one contract between the cluster side and the cloud side.

In the spirit of virtual-kubelet's ``PodLifecycleHandler``: the pod controller needs only to
create, update, delete and read pods; everything ECI-specific lives behind this protocol.
Pods cross it as ``kubernetes_asyncio`` ``V1Pod`` objects, statuses come back as ``V1PodStatus``.
Implementations raise the classes of :mod:`vk_eci.cloud.errors` (throttled, retryable,
permanent, not found) so that the controller can decide about retries without knowing ECI.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

# kubernetes_asyncio has no type information; V1Pod and V1PodStatus are plain Any to mypy.
Pod = Any
PodStatus = Any


@runtime_checkable
class PodLifecycleHandler(Protocol):
    """What a provider must do for the pod controller."""

    async def create_pod(self, pod: Pod) -> None:
        """Start ``pod`` in the cloud. Idempotent: a retried create makes no second instance."""

    async def update_pod(self, pod: Pod) -> None:
        """Apply the changes to ``pod`` that the cloud can apply in place (it may do nothing)."""

    async def delete_pod(self, pod: Pod) -> None:
        """Stop ``pod`` honouring its grace period; deleting an absent pod is not an error."""

    async def get_pod(self, namespace: str, name: str) -> Pod | None:
        """The pod as the cloud runs it, or None when the cloud has no such pod."""

    async def get_pod_status(self, namespace: str, name: str) -> PodStatus | None:
        """The pod's current status, or None when the cloud has no such pod."""

    async def get_pods(self) -> list[Pod]:
        """Every pod this node runs in the cloud (used by start-up reconciliation)."""


@runtime_checkable
class PodStatusNotifier(Protocol):
    """Optional second interface: a provider that can push status changes in batches."""

    def notify_pods(self, callback: Any) -> None:
        """Register ``callback(pod)`` to be awaited with each pod whose status changed."""


@runtime_checkable
class EventRecorder(Protocol):
    """How a provider tells the user something about a pod: a Kubernetes Event on it.

    The cluster side implements it; the cloud side only calls it. ``type`` is ``Normal`` or
    ``Warning``; ``reason`` is CamelCase (``InvalidAnnotation``, ``SuccessfulHitImageCache``).
    """

    async def record(self, pod: Pod, type: str, reason: str, message: str) -> None:
        """Emit (or count up, when repeated) one event on ``pod``; never raises."""
