"""``ProfileWatch``: the current ECI profile and namespace labels, hot-reloaded.

Two Informers (the node's one list+watch): the ``eci-profile`` ConfigMap by name in the node's
namespace (RBAC grants exactly that name), and namespaces (their labels, for the selectors and
the policy's namespace selectors). A change is parsed at once; the next pod sees it. A profile
that cannot be read is logged with the key and reason, and a ``ProfileRejected`` Warning event
on the ConfigMap says the same (``kubectl describe configmap eci-profile``); the last good one
stays. A taken version gets a ``ProfileTaken`` event. A deleted
ConfigMap is the empty profile: deny-unless-allowed, the node's own network.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from vk_eci.cloud.policy.profile import PROFILE_NAME, Profile, parse_profile
from vk_eci.cloud.policy.rules import PolicyError
from vk_eci.cluster.kube.events import KubeEventRecorder
from vk_eci.cluster.kube.informer import Informer, meta
from vk_eci.log import node_logger

REJECTED = "ProfileRejected"
TAKEN = "ProfileTaken"


def profile_location(configured: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(namespace, name) of the profile: ``NAMESPACE/NAME`` as configured, else
    ``$POD_NAMESPACE/eci-profile`` (the node's namespace in the chart), else kube-system."""
    namespace, _, name = configured.partition("/")
    if configured and name:
        return namespace, name
    environ = os.environ if env is None else env
    return environ.get("POD_NAMESPACE") or "kube-system", configured or PROFILE_NAME


class ProfileWatch:
    """See the module docstring."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str = PROFILE_NAME) -> None:
        core = client.CoreV1Api(api)
        self.namespace, self.name = namespace, name
        self.profile = Profile()
        self.error = ""  # why the ConfigMap's current version was not taken ("" : it was)
        self.on_change: list[Callable[[], None]] = []  # poked after a new profile is taken
        self.configmaps = Informer(f"profile {namespace}/{name}", core.list_namespaced_config_map,
                                   namespace, logger=node_logger,
                                   field_selector=f"metadata.name={name}")
        self.configmaps.add_handler(self._changed, lambda key, _obj: self._changed(key))
        self.namespaces = Informer("namespaces", core.list_namespace, logger=node_logger)
        # Events on the ConfigMap, when set: an operator editing it reads the verdict with
        # kubectl, not only in the node's log.
        self.recorder: KubeEventRecorder | None = None
        self._recording: set[asyncio.Task[None]] = set()

    def current(self) -> Profile:
        return self.profile

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        obj = self.namespaces.cache.get(namespace)
        return meta(obj, "labels") if obj is not None else None

    def _changed(self, key: str) -> None:
        obj: Any = self.configmaps.cache.get(key)
        try:
            profile = (parse_profile(obj.data, str(meta(obj, "resourceVersion") or ""))
                       if obj is not None else Profile())
        except PolicyError as e:
            self.error = str(e)
            node_logger.warning("profile %s/%s not taken, keeping the last good one: %s",
                                self.namespace, self.name, e)
            self._event(obj, "Warning", REJECTED,
                        f"profile not taken, the node keeps the last good one: {e}")
            return
        self.profile, self.error = profile, ""
        node_logger.info("profile %s/%s taken (version %s)", self.namespace, self.name,
                         profile.version or "none: the ConfigMap is absent")
        if obj is not None:
            self._event(obj, "Normal", TAKEN, f"profile taken (version {profile.version})")
        for poke in self.on_change:
            poke()

    def _event(self, obj: Any, type: str, reason: str, message: str) -> None:
        if self.recorder is None:
            return
        task = asyncio.get_running_loop().create_task(self._record(obj, type, reason, message))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _record(self, obj: Any, type: str, reason: str, message: str) -> None:
        assert self.recorder is not None
        try:
            await self.recorder.record(obj, type, reason, message, kind="ConfigMap")
        except Exception as e:  # a standby is fenced from writing events: the leader writes it
            node_logger.debug("profile event %s not written: %s", reason, e)

    async def synced(self) -> None:
        await asyncio.gather(self.configmaps.synced.wait(), self.namespaces.synced.wait())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.configmaps.run(), name="profile-configmap")
            tg.create_task(self.namespaces.run(), name="profile-namespaces")
