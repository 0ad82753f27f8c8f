"""``EciProvider``: the :class:`vk_eci.provider.PodLifecycleHandler` for ECI.

Creates translate the pod (objects it refers to fetched through
:class:`vk_eci.provider.PodResources`) and carry ``ClientToken`` = pod UID; a repeated create
that ECI answers with ``IdempotentParameterMismatch`` (or "already exists") is success once the
group is found by its tags. Statuses come from one cache of every group tagged for this
cluster + node, filled by :meth:`EciProvider.refresh` (``ceil(groups/20)``
``DescribeContainerGroups`` calls, events included) and never by a call per pod.
:meth:`EciProvider.run` refreshes on an interval and soon after :meth:`request_refresh`; each
changed status is pushed to the callbacks of :meth:`notify_pods`, and new ECI events are copied
onto pods through the :class:`vk_eci.provider.EventRecorder`. Between listings,
:meth:`EciProvider.changed_pods` asks ECI only for the groups whose status changed
(:mod:`vk_eci.cloud.groups.poll`) and fetches just those, 20 a call, events included.

Deletion calls ``DeleteContainerGroup``; ECI itself gives the containers the pod's
``terminationGracePeriodSeconds`` (sent at creation) between SIGTERM and SIGKILL.

The parts: the state and settings in :mod:`vk_eci.cloud.provider_state`, pushing statuses and
copying events in :mod:`vk_eci.cloud.provider_push`, the listing, polls and reads in
:mod:`vk_eci.cloud.provider_listing`; here, the creation path (create, update, delete).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import InvalidInput, MissingDependency, NotFound, Permanent
from vk_eci.cloud.groups.view import carries as _carries
from vk_eci.cloud.groups.view import key as _key
from vk_eci.cloud.groups.view import tag as _tag
from vk_eci.cloud.groups.view import tags as _tags
from vk_eci.cloud.placement.annotations import check_placement, parse_placement
from vk_eci.cloud.policy.evaluate import facts_of_model
from vk_eci.cloud.policy.gate import denied
from vk_eci.cloud.provider_refresh import VolumeRefresh, opted_in
from vk_eci.cloud.provider_state import Known
from vk_eci.cloud.provider_update import NOT_APPLIED, UPDATABLE, image_changes, update_request
from vk_eci.cloud.translation.context import gather
from vk_eci.cloud.translation.credentials import pull_secret_credentials
from vk_eci.cloud.translation.pod import translate
from vk_eci.log import cloud_logger
from vk_eci.provider import Pod

_DUPLICATE_CODES = ("IdempotentParameterMismatch", "ContainerGroup.AlreadyExist",
                    "InvalidContainerGroupName.Duplicate", "ContainerGroupName.Duplicate")


class EciProvider(VolumeRefresh):
    """See the module docstring."""

    # ---- PodLifecycleHandler --------------------------------------------------------------

    async def create_pod(self, pod: Pod) -> None:
        base = self.settings.base_context()
        if self.gate is not None:
            # The profile's policy again at creation: a pod admitted before a policy change,
            # or past a webhook that was down, never reaches ECI with what it may not use.
            denial = self.gate.check(facts_of_model(pod))
            if denial is not None:
                err = denied(denial)
                await self._warn(pod, str(err.event), str(err.reason))
                raise err
            base = replace(base, placement=self.gate.placement(base.placement),
                           service_access=base.service_access if self.gate.cluster_ip()
                           else None)
        placement = parse_placement(pod.metadata.annotations)
        for problem in placement.problems:
            await self._warn(pod, "InvalidAnnotation", problem.message())
        check_placement(placement)
        try:
            refreshed = opted_in(pod)  # vk-eci.io/refresh-volumes (docs/BEHAVIOUR.md §6)
            # gather too: the injected kube-proxy's account may be missing, its opt-out bad.
            ctx = await gather(pod, self.resources, base)
            if self.cache_decider is not None:
                # Which registries the pod may start a cached image of, and the credentials a
                # cache the node builds for it is built with (docs/IMAGE_CACHES.md).
                credentials = pull_secret_credentials(pod, ctx.secrets)
                ctx = replace(ctx, cache=await self.cache_decider(pod, credentials))
            translation = translate(pod, ctx)
        except (MissingDependency, InvalidInput) as err:
            # A missing dependency is retried (the object is often created just after the pod),
            # but never silently; both carry the event reason Kubernetes tooling looks for.
            if err.event:
                await self._warn(pod, err.event, str(err))
            raise
        # What the pod asks for and ECI will not get is skipped or folded as the kubelet would,
        # but said as a Warning and a log line, never dropped unsaid.
        for warning in translation.warnings:
            await self._warn(pod, warning.reason, warning.message)
        key = _key(pod.metadata.namespace, pod.metadata.name)
        known = self._known.setdefault(key, Known(pod))
        known.pod = pod
        try:
            group_id = await self.client.create_container_group(translation.request)
        except Permanent as err:
            if not err.code.startswith(_DUPLICATE_CODES):
                raise
            group = await self._find_group(pod)
            if group is None:
                raise
            group_id = group.container_group_id
            cloud_logger.info("container group %s already exists for pod", group_id,
                              extra={"pod": f"{pod.metadata.namespace}/{pod.metadata.name}"})
        known.group_id = group_id
        if refreshed:
            self.remember_volumes(pod, ctx, translation.request)
        known.created_at = time.monotonic()
        self._moving[key] = known.created_at
        self.request_refresh()

    async def _warn(self, pod: Pod, reason: str, message: str) -> None:
        cloud_logger.warning(message, extra={
            "pod": f"{pod.metadata.namespace}/{pod.metadata.name}", "reason": reason})
        if self.events is not None:
            await self.events.record(pod, "Warning", reason, message)

    async def _find_group(self, pod: Pod) -> Any | None:
        """The group of this very pod (its namespace, name and UID tags, whatever its name)."""
        meta = pod.metadata
        namespace, uid = meta.namespace or "default", meta.uid
        groups = await self.client.describe_container_groups(tags=naming.pod_tags(
            self.settings.cluster_name, self.settings.node_name, namespace, meta.name, uid))
        for group in groups:
            if _carries(group, self._mine) and naming.belongs_to(_tags(group), namespace,
                                                                 meta.name, uid):
                return group
        return None

    async def update_pod(self, pod: Pod) -> None:
        """Keep the newest pod (statuses and events go to its current version) and apply an
        image change through ``UpdateContainerGroup`` (:mod:`vk_eci.cloud.provider_update`)."""
        key = _key(pod.metadata.namespace, pod.metadata.name)
        known = self._known.get(key)
        if known is not None:
            known.pod = pod
        group = self._groups.get(key)
        if group is None or _tag(group, naming.TAG_POD_UID) not in (None, pod.metadata.uid):
            return
        changes = image_changes(pod, group)
        for change in (c for c in changes if c.init):
            await self._warn(pod, NOT_APPLIED, f"{change.describe()} not applied: ECI updates "
                             "init containers only by restarting the whole instance")
        apps = [c for c in changes if not c.init]
        if not apps:
            return
        if group.status not in UPDATABLE:
            await self._warn(pod, NOT_APPLIED, f"{'; '.join(c.describe() for c in apps)} not "
                             f"applied: ECI updates only Pending or Running container groups, "
                             f"{group.container_group_id} is {group.status}")
            return
        ctx = await gather(pod, self.resources, self.settings.base_context())
        request = update_request(group.container_group_id, translate(pod, ctx).request)
        await self.client.update_container_group(request)
        if self.events is not None:
            for change in apps:
                await self.events.record(pod, "Normal", "UpdatingImage", f"{change.describe()} "
                                         f"(UpdateContainerGroup on {group.container_group_id}:"
                                         " Updating until the container runs the new image)")
        self.request_refresh()

    async def delete_pod(self, pod: Pod) -> None:
        key = _key(pod.metadata.namespace, pod.metadata.name)
        uid = pod.metadata.uid
        known = self._known.get(key)
        group = self._groups.get(key)
        group_id = (group.container_group_id if group is not None
                    and _tag(group, naming.TAG_POD_UID) in (None, uid) else None)
        if group_id is None and known is not None and known.pod.metadata.uid == uid:
            group_id = known.group_id
        if group_id is None:
            found = await self._find_group(pod)
            group_id = found.container_group_id if found is not None else None
        if group_id is not None and group_id not in self._deleted:
            # Already gone is fine: deleting an absent pod is not an error.
            with contextlib.suppress(NotFound):
                await self.client.delete_container_group(group_id)
            # The group stays listed (Terminating) until ECI ends it, so the caller can watch
            # the grace period pass through get_pod_status; a second delete is not sent.
            self._deleted.add(group_id)
        if known is not None and known.pod.metadata.uid == uid:
            known.created_at = None
        self._moving[key] = time.monotonic()
        self.request_refresh()


