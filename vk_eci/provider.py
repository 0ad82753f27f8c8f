"""The one contract between the cluster side and the cloud side.

In the spirit of virtual-kubelet's ``PodLifecycleHandler``: the pod controller needs only to
create, update, delete and read pods; everything ECI-specific lives behind this protocol.
Pods cross it as ``kubernetes_asyncio`` ``V1Pod`` objects, statuses come back as ``V1PodStatus``.
Implementations raise the classes of :mod:`vk_eci.cloud.api.errors` (throttled, retryable,
permanent, not found) so that the controller can decide about retries without knowing ECI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True)
class StatusChange:
    """A pod whose status the cloud reports as changed since the previous poll.

    ``not_before`` (epoch seconds) is when the provider last asked and the change was not yet
    there, so the change happened after it (None: unknown, e.g. after a failed poll); together
    with the cloud's own transition timestamps (whole seconds) it bounds the status lag.
    """

    pod: Pod
    not_before: float | None = None
    # From a full listing: a fingerprint of everything of the cloud's answer that the status
    # is built from. The same pod version with the same fingerprint has the same status, so
    # the caller can say it holds it already (``settled`` of :meth:`IncrementalStatus.resync`).
    fingerprint: int | None = None


# ``settled(namespace/name, pod UID, fingerprint)``: whether the caller holds that status.
Settled = Callable[[str, str | None, int], bool]


@runtime_checkable
class IncrementalStatus(Protocol):
    """Optional third interface: a provider that can tell which pods changed, cheaply."""

    async def changed_pods(self) -> list[StatusChange]:
        """Pods whose status changed since the previous call (every pod's, first time)."""

    async def resync(self, settled: Settled | None = None
                     ) -> tuple[list[StatusChange], set[str]]:
        """A full listing: every pod's status as the cloud has it now (the caller writes the
        ones that differ), except those ``settled`` says the caller holds already (it would
        find them equal; building and comparing every pod's status is most of a listing's
        cost at thousands of pods), and ``namespace/name`` of every pod the cloud has (the
        others are missing)."""

    def busy(self) -> bool:
        """Whether a pod is starting or stopping, so that polling faster pays off."""


@runtime_checkable
class EventRecorder(Protocol):
    """How a provider tells the user something about a pod: a Kubernetes Event on it.

    The cluster side implements it; the cloud side only calls it. ``type`` is ``Normal`` or
    ``Warning``; ``reason`` is CamelCase (``InvalidAnnotation``, ``SuccessfulHitImageCache``).
    """

    async def record(self, pod: Pod, type: str, reason: str, message: str) -> None:
        """Emit (or count up, when repeated) one event on ``pod``; never raises."""


@runtime_checkable
class CacheObserver(Protocol):
    """Where the cluster side reports the ECI image-cache states it sees (the ImageCache
    controller), so that the cloud side's cache catalog never decides on an older view."""

    def observe(self, model: Any) -> None:
        """One cache as ECI described it (an SDK ``DescribeImageCaches`` item)."""

    def observe_gone(self, cache_id: str) -> None:
        """ECI no longer has ``cache_id`` (deleted, or absent from a listing)."""

    def observe_refresh(self, cache_id: str, period: float | None,
                        refreshed_at: float | None) -> None:
        """The refresh period the cache's ImageCache object sets (None: none) and when it was
        last refreshed (Unix seconds; None: never): ECI's listing says neither."""


# ---- the kubelet API's view of the cloud: logs, exec, usage ------------------------------------
# Records are plain values so that the kubelet server never sees an ECI model.


@dataclass(frozen=True)
class LogOptions:
    """What ``GET /containerLogs`` asks for, already validated (kubelet's PodLogOptions)."""

    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None  # UTC
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


class ExecStream(Protocol):
    """An open interactive exec in the cloud, in Kubernetes' channel numbering: the node sends
    0 stdin, 4 resize (JSON), 255 close (data ``b"\\x00"``: stdin ended) and receives 1 stdout,
    2 stderr, 3 the final ``metav1.Status`` JSON (exit code as an ``ExitCode`` cause)."""

    async def send(self, channel: int, data: bytes) -> None:
        """Forward one frame to the command."""

    async def receive(self) -> tuple[int, bytes] | None:
        """The next frame from the command; None when the stream has ended."""

    async def close(self) -> None:
        """End the stream (and the command's connection)."""


@dataclass(frozen=True)
class RunningPod:
    """A pod as the runtime sees it (the kubelet's ``/runningpods/``): identity and the
    ``(name, image)`` of each running container, nothing of the spec beyond that."""

    namespace: str
    name: str
    uid: str
    containers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ContainerUsage:
    """Latest usage sample of one container."""

    name: str
    cpu_nano_cores: int
    cpu_core_nano_seconds: int
    memory_working_set_bytes: int
    memory_usage_bytes: int
    memory_rss_bytes: int
    start_time: datetime | None = None


@dataclass(frozen=True)
class PodUsage:
    """Latest usage sample of one pod (a container group) at ``timestamp``."""

    namespace: str
    name: str
    uid: str
    timestamp: datetime
    cpu_nano_cores: int
    cpu_core_nano_seconds: int
    memory_working_set_bytes: int
    memory_usage_bytes: int
    memory_rss_bytes: int
    containers: tuple[ContainerUsage, ...] = ()
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    start_time: datetime | None = None


@runtime_checkable
class PodIO(Protocol):
    """What the kubelet API needs from the cloud; errors are :mod:`vk_eci.cloud.api.errors` classes
    (``NotFound`` when the pod or container is unknown to the cloud)."""

    async def container_logs(self, namespace: str, pod: str, container: str,
                             options: LogOptions) -> str:
        """The container's log text (lines ending in ``\\n``) as ``options`` select it."""

    async def container_state(self, namespace: str, pod: str, container: str) -> str | None:
        """``Waiting``/``Running``/``Terminated`` (None: no such pod in the cloud); the
        follow loop of ``containerLogs`` stops when the container ends."""

    async def open_exec(self, namespace: str, pod: str, container: str,
                        command: Sequence[str], *, tty: bool, stdin: bool) -> ExecStream:
        """Start ``command`` in the container with a stream to and from it."""

    async def pod_usage(self) -> list[PodUsage]:
        """The latest usage of every pod this node runs (batched cloud calls)."""

    async def running_pods(self) -> list[RunningPod]:
        """The pods of this node that have a running container in the cloud (one listing)."""


# ---- what translating a pod needs from the cluster (secrets, config maps, tokens) -------------


@dataclass(frozen=True)
class SecretData:
    """A Secret as the cloud side needs it: its ``type`` and base64-decoded ``data``."""

    type: str
    data: Mapping[str, bytes]


@dataclass(frozen=True)
class ConfigMapData:
    """A ConfigMap's ``data`` and ``binaryData`` (decoded)."""

    data: Mapping[str, str]
    binary_data: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimData:
    """A PersistentVolumeClaim as translation needs it: whether it is bound and, if so, the
    source of its PersistentVolume (``source`` is the PV's source field in Kubernetes spelling:
    ``nfs``, ``csi``, ``hostPath``…; ``attributes`` holds ``server``/``path`` for nfs, and
    ``driver``, ``volumeHandle``, ``fsType`` plus the CSI ``volumeAttributes`` for csi)."""

    phase: str  # Pending | Bound | Lost
    volume_name: str | None = None
    source: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    read_only: bool = False
    capacity: str | None = None  # the PV's spec.capacity.storage


@runtime_checkable
class PodResources(Protocol):
    """The cluster objects a pod refers to; the cluster side implements it (with its informer
    caches or the API). Each returns None when the object does not exist; errors talking to the
    API server propagate."""

    async def secret(self, namespace: str, name: str) -> SecretData | None:
        """The named Secret of ``namespace``."""

    async def config_map(self, namespace: str, name: str) -> ConfigMapData | None:
        """The named ConfigMap of ``namespace``."""

    async def service_env(self, namespace: str) -> Mapping[str, str]:
        """The ``{SVC}_SERVICE_HOST``/``_PORT``… variables of ``namespace``'s services (docker
        links style, as the kubelet makes them); asked only when ``enableServiceLinks``."""

    async def service_account_token(self, pod: Pod, audience: str | None,
                                    expiration_seconds: int | None) -> str:
        """A bound token for ``pod``'s service account (TokenRequest), for a projected
        ``serviceAccountToken`` volume source."""

    async def proxy_token(self, namespace: str, account: str, node: str, seconds: int) -> str:
        """A token of service account ``namespace/account`` for the kube-proxy the node injects
        into a group, bound to the Node ``node`` and valid for ``seconds``."""

    async def persistent_volume_claim(self, namespace: str, name: str) -> ClaimData | None:
        """The named PersistentVolumeClaim of ``namespace`` with its bound volume's source."""
