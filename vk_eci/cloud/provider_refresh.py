"""Opt-in refresh of a running pod's ConfigMap, Secret and token files (``docs/BEHAVIOUR.md`` §6).

The kubelet rewrites a pod's ConfigMap, Secret and projected files when their objects change,
and its service-account tokens at 80% of their life. On ECI those files are ``ConfigFileVolume``
content sent at creation; the only call that replaces it, ``UpdateContainerGroup``, restarts the
instance (ECI: any update other than registry credentials alone "需要重启ECI实例"). So a refresh is
a restart, and only a pod annotated ``vk-eci.io/refresh-volumes: restart`` gets one:

- every ``volume_refresh_interval`` seconds (60 by default) the node re-reads the ConfigMaps and
  Secrets each opted-in pod refers to (one GET each, the reads of the create; no watch) and
  renders the pod's ConfigFile volumes with the same pure translation as at create; a token is
  asked for again (``TokenRequest``) only once 80% of its life (``exp - iat``) has passed;
- a volume of the pod's own whose files differ from those last sent is sent, whole, in one
  ``UpdateContainerGroup`` (``IncrementalUpdate``: only the changed volumes) with a Normal
  ``RefreshingVolumes`` event that says ECI restarts the instance;
- at most one refresh per pod per interval: edits made meanwhile are coalesced into the next.

What the node last sent is kept in memory only. After a node restart the first check takes the
pod's current objects as the baseline (a change made while the node was down is sent with the
next change) and counts its tokens' life from the group's creation (never later than due).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import InvalidInput, MissingDependency
from vk_eci.cloud.groups.view import key as _key
from vk_eci.cloud.groups.view import tag as _tag
from vk_eci.cloud.provider_listing import GroupListing
from vk_eci.cloud.provider_update import UPDATABLE
from vk_eci.cloud.translation.context import TokenKey, TranslateContext, gather
from vk_eci.cloud.translation.pod import translate
from vk_eci.cloud.translation.tokens import REFRESH_ANNOTATION, token_claims
from vk_eci.log import cloud_logger, redact
from vk_eci.provider import ClaimData, ConfigMapData, Pod, PodResources, SecretData

ANNOTATION = REFRESH_ANNOTATION
MODES = ("restart", "never")  # never: the default, files are written once
TOKEN_SHARE = 0.8  # of a token's life, after which it is asked for again (as the kubelet does)
REFRESHED = "RefreshingVolumes"
FAILED = "VolumeRefreshFailed"

# A ConfigFile volume's files: volume name -> ((path, base64 content), ...), sorted.
ConfigFiles = dict[str, tuple[tuple[str, str], ...]]


def opted_in(pod: Any) -> bool:
    """Whether ``pod`` asked for its files to be refreshed by restart; raises on a bad value."""
    value = str((pod.metadata.annotations or {}).get(ANNOTATION, "never")).strip().lower()
    if value not in MODES:
        raise InvalidInput(f"annotation {ANNOTATION}={value!r}",
                           f"must be one of {', '.join(MODES)}", event="InvalidAnnotation")
    return value == "restart"


def config_files(pod: Any, request: Any) -> ConfigFiles:
    """The ConfigFile volumes of ``request`` that are ``pod``'s own volumes (not the injected
    kube-proxy's), by name."""
    own = {v.name for v in pod.spec.volumes or []}
    out: ConfigFiles = {}
    for v in request.volume or []:
        if v.type == "ConfigFileVolume" and v.name in own and v.config_file_volume is not None:
            out[v.name] = tuple(sorted((str(p.path), str(p.content or ""))
                                       for p in v.config_file_volume.config_file_to_path or []))
    return out


def changed(old: ConfigFiles, new: ConfigFiles) -> list[str]:
    """The volumes whose files differ (a volume the pod no longer has is not sent)."""
    return sorted(name for name, files in new.items() if old.get(name) != files)


def token_due(token: str, issued: float) -> float:
    """The wall time at which ``token`` (issued at ``issued`` unless its JWT says) is due for
    renewal: ``TOKEN_SHARE`` of its life after it was issued."""
    claims = token_claims(token)
    iat, exp = claims if claims is not None else (issued, issued + 3600.0)
    return min(iat, issued) + TOKEN_SHARE * (exp - iat)


def volume_update(group_id: str, request: Any, names: list[str]) -> Any:
    """``UpdateContainerGroup`` giving group ``group_id`` the volumes ``names`` of ``request``
    (a translated ``CreateContainerGroupRequest``), each whole; nothing else of the group."""
    return eci.UpdateContainerGroupRequest(
        container_group_id=group_id, update_type="IncrementalUpdate",
        volume=[eci.UpdateContainerGroupRequestVolume().from_map(v.to_map())
                for v in request.volume or [] if v.name in names])


@dataclass
class Token:
    value: str
    due: float  # wall time


@dataclass
class RefreshState:
    """What was last sent to one opted-in pod's group, and when."""

    files: ConfigFiles
    tokens: dict[TokenKey, Token] = field(default_factory=dict)
    last: float = 0.0  # monotonic time of the create or the last refresh


class _Remembered:
    """The pod's resources as a refresh reads them: ConfigMaps, Secrets and claims afresh, the
    tokens last sent unless due (a new one costs a TokenRequest and a restart), no service
    links (environment variables are not files)."""

    def __init__(self, inner: PodResources, tokens: Mapping[TokenKey, Token],
                 issued: float) -> None:
        self.inner = inner
        self.tokens = dict(tokens)
        self.issued = issued  # what a new token's life is counted from
        self.renewed: list[TokenKey] = []

    async def secret(self, namespace: str, name: str) -> SecretData | None:
        return await self.inner.secret(namespace, name)

    async def config_map(self, namespace: str, name: str) -> ConfigMapData | None:
        return await self.inner.config_map(namespace, name)

    async def service_env(self, namespace: str) -> Mapping[str, str]:
        return {}

    async def service_account_token(self, pod: Pod, audience: str | None,
                                    expiration_seconds: int | None) -> str:
        key = (audience, expiration_seconds)
        kept = self.tokens.get(key)
        if kept is not None and time.time() < kept.due:
            return kept.value
        value = await self.inner.service_account_token(pod, audience, expiration_seconds)
        self.tokens[key] = Token(value, token_due(value, self.issued))
        if kept is not None:
            self.renewed.append(key)
        return value

    async def proxy_token(self, namespace: str, account: str, node: str, seconds: int) -> str:
        return await self.inner.proxy_token(namespace, account, node, seconds)

    async def persistent_volume_claim(self, namespace: str, name: str) -> ClaimData | None:
        return await self.inner.persistent_volume_claim(namespace, name)


def _created(group: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(group.creation_time).replace("Z", "+00:00")
                                         ).timestamp()
    except ValueError:
        return time.time()


class VolumeRefresh(GroupListing):
    """The provider's opt-in refresh; see the module docstring."""

    def remember_volumes(self, pod: Pod, ctx: TranslateContext, request: Any) -> None:
        """At create: what an opted-in pod's group was given."""
        known = self._known.get(_key(pod.metadata.namespace, pod.metadata.name))
        if known is None:
            return
        now = time.time()
        known.refresh = RefreshState(
            config_files(pod, request),
            {k: Token(v, token_due(v, now)) for k, v in ctx.service_account_tokens.items()},
            time.monotonic())

    async def run_volume_refresh(self, stop: asyncio.Event | None = None) -> None:
        """Check the opted-in pods every ``volume_refresh_interval`` until cancelled."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async with asyncio.timeout(max(1.0, self.settings.volume_refresh_interval)):
                    await stop.wait()
            except TimeoutError:
                pass
            await self.refresh_volumes()

    async def refresh_volumes(self) -> int:
        """One check of every opted-in pod; returns how many groups were updated."""
        sent = 0
        for key, known in list(self._known.items()):
            pod, group = known.pod, self._groups.get(key)
            if group is None or group.status not in UPDATABLE or \
                    _tag(group, naming.TAG_POD_UID) not in (None, pod.metadata.uid):
                continue
            try:
                if not opted_in(pod):
                    continue
            except InvalidInput:
                continue  # refused at create, with its event
            state: RefreshState | None = getattr(known, "refresh", None)
            if state is not None and \
                    time.monotonic() - state.last < self.settings.volume_refresh_interval:
                continue  # one refresh per pod per interval: later edits wait and coalesce
            try:
                sent += await self._refresh_one(known, pod, group, state)
            except Exception as err:  # one pod's failure must not stop the others
                await self._refresh_failed(pod, state, err)
        return sent

    async def _refresh_one(self, known: Any, pod: Pod, group: Any,
                           state: RefreshState | None) -> int:
        issued = time.time() if state is not None else _created(group)
        resources = _Remembered(self.resources, state.tokens if state else {}, issued)
        ctx = await gather(pod, resources, self.settings.base_context())
        request = translate(pod, ctx).request
        files = config_files(pod, request)
        if state is None:  # adopted after a restart: what the pod has now is the baseline
            known.refresh = RefreshState(files, resources.tokens, time.monotonic())
            return 0
        names = changed(state.files, files)
        if not names:
            state.tokens = resources.tokens
            return 0
        await self.client.update_container_group(
            volume_update(group.container_group_id, request, names))
        known.refresh = RefreshState(files, resources.tokens, time.monotonic())
        what = ", ".join(names)
        why = "a ConfigMap, Secret or token it mounts changed" + (
            "; service-account token(s) renewed at 80% of their life" if resources.renewed
            else "")
        cloud_logger.info("refreshing volumes %s of %s/%s: %s", what, pod.metadata.namespace,
                          pod.metadata.name, why)
        if self.events is not None:
            await self.events.record(pod, "Normal", REFRESHED, (
                f"volume(s) {what} refreshed ({why}): UpdateContainerGroup on "
                f"{group.container_group_id}; ECI restarts the instance to apply it "
                f"({ANNOTATION}: restart)"))
        self.request_refresh()
        return 1

    async def _refresh_failed(self, pod: Pod, state: RefreshState | None,
                              err: Exception) -> None:
        if isinstance(err, MissingDependency):
            return  # the kubelet, too, keeps the last files of an object that went away
        if state is not None:
            state.last = time.monotonic()  # tried again after an interval, not at once
        cloud_logger.warning("volume refresh of %s/%s failed: %s", pod.metadata.namespace,
                             pod.metadata.name, redact(str(err)))
        if self.events is not None:
            await self.events.record(pod, "Warning", FAILED, f"{redact(str(err))}; the files "
                                     "stay as they were and are tried again")


