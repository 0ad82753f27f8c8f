"""Pod volumes → ECI volumes.

``emptyDir`` → ``EmptyDirVolume``; ``nfs`` → ``NFSVolume``; ``configMap``, ``secret``,
``downwardAPI`` and ``projected`` (incl. the service-account token) → ``ConfigFileVolume`` whose
files the node fills in (base64) from the resolved objects, since ECI cannot read the cluster.
``persistentVolumeClaim`` → ``NFSVolume``/``DiskVolume`` from the bound PV (:mod:`claims`).
Anything else is :class:`InvalidInput` naming the volume and its type.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.errors import InvalidInput, MissingDependency
from vk_eci.cloud.translation.bounds import MAX_VOLUME_FILE, Budget, volume_budget
from vk_eci.cloud.translation.claims import claim_volume
from vk_eci.cloud.translation.context import TranslateContext, Warnings
from vk_eci.cloud.translation.env import field_value, resource_value
from vk_eci.cloud.translation.missing import absent
from vk_eci.cloud.translation.tokens import REFRESH_ANNOTATION, expiry_warning

MAX_VOLUMES = 20
SUPPORTED = ("emptyDir", "configMap", "secret", "projected", "downwardAPI", "nfs",
             "persistentVolumeClaim")
# V1Volume attribute → Kubernetes field name, for naming a rejected volume's type.
_SOURCE_FIELDS = {
    "host_path": "hostPath", "persistent_volume_claim": "persistentVolumeClaim",
    "aws_elastic_block_store": "awsElasticBlockStore", "azure_disk": "azureDisk",
    "azure_file": "azureFile", "cephfs": "cephfs", "cinder": "cinder", "csi": "csi",
    "ephemeral": "ephemeral", "fc": "fc", "flex_volume": "flexVolume", "flocker": "flocker",
    "gce_persistent_disk": "gcePersistentDisk", "git_repo": "gitRepo", "glusterfs": "glusterfs",
    "image": "image", "iscsi": "iscsi", "photon_persistent_disk": "photonPersistentDisk",
    "portworx_volume": "portworxVolume", "quobyte": "quobyte", "rbd": "rbd",
    "scale_io": "scaleIO", "storageos": "storageos", "vsphere_volume": "vsphereVolume",
}

File = tuple[str, bytes, int | None]  # (relative path, content, mode)


def volume_type(vol: Any) -> str:
    """The Kubernetes type name of a volume (``hostPath``, ``emptyDir``…)."""
    for attr, name in (("empty_dir", "emptyDir"), ("config_map", "configMap"),
                       ("secret", "secret"), ("projected", "projected"),
                       ("downward_api", "downwardAPI"), ("nfs", "nfs")):
        if getattr(vol, attr, None) is not None:
            return name
    for attr, name in _SOURCE_FIELDS.items():
        if getattr(vol, attr, None) is not None:
            return name
    return "unknown"


class _Files:
    """A ConfigFile volume's files, each measured as it is added (bounds.py): one past ECI's
    limits is refused before the next is built."""

    def __init__(self, volume: str, pod: Budget | None) -> None:
        self.volume = volume
        self.budget = volume_budget(volume, pod)
        self.items: list[File] = []

    def add(self, path: str, content: bytes, mode: int | None) -> None:
        thing = f"volume {self.volume} file {path}"
        if len(content) > MAX_VOLUME_FILE:
            raise InvalidInput(thing, f"is {len(content)} bytes, more than {MAX_VOLUME_FILE} "
                                      "(ECI's limit for one file of a ConfigFile volume)")
        self.budget.add(thing, len(content))
        self.items.append((path, content, mode))


def _items(ctx: TranslateContext, data: Mapping[str, bytes], items: Iterable[Any] | None,
           kind: str, name: str, optional: bool, notes: Warnings, files: _Files) -> None:
    """Files of a secret/config map: the listed ``items`` (key → path) or every key."""
    if items:
        for item in items:
            if item.key not in data:
                absent(ctx, kind, name, f"volume {files.volume}", optional=optional,
                       notes=notes, key=item.key)
                continue
            files.add(item.path, data[item.key], item.mode)
        return
    for key, value in sorted(data.items()):
        files.add(key, value, None)


def _secret_files(ctx: TranslateContext, src: Any, name: str, notes: Warnings,
                  files: _Files) -> None:
    secret, optional = ctx.secrets.get(name), bool(src.optional)
    if secret is None:
        absent(ctx, "secret", name, f"volume {files.volume}", optional=optional, notes=notes)
        return
    _items(ctx, secret.data, src.items, "secret", name, optional, notes, files)


def _config_map_files(ctx: TranslateContext, src: Any, notes: Warnings, files: _Files) -> None:
    cm, optional = ctx.config_maps.get(src.name), bool(src.optional)
    if cm is None:
        absent(ctx, "config map", src.name, f"volume {files.volume}", optional=optional,
               notes=notes)
        return
    data: dict[str, bytes] = {}
    for key, text in cm.data.items():
        # Only the keys that will be files are encoded (each at most once per reference).
        if not src.items or any(item.key == key for item in src.items):
            data[key] = text.encode()
    data.update(cm.binary_data)
    _items(ctx, data, src.items, "config map", src.name, optional, notes, files)


def _downward_files(pod: Any, items: Iterable[Any] | None, group_cpu: float | None,
                    group_memory: float | None, files: _Files) -> None:
    volume = files.volume
    containers = list(pod.spec.init_containers or []) + list(pod.spec.containers or [])
    for item in items or []:
        if item.field_ref is not None:
            path = item.field_ref.field_path
            if path.startswith("status."):
                raise InvalidInput(f"volume {volume} item {item.path}",
                                   f"field {path} is not known when the pod is created")
            value = field_value(pod, path, f"(volume {volume})")
        elif item.resource_field_ref is not None:
            if not item.resource_field_ref.container_name:
                raise InvalidInput(f"volume {volume} item {item.path}",
                                   "resourceFieldRef needs containerName in a volume")
            value = resource_value(containers, item.resource_field_ref.container_name,
                                   item.resource_field_ref, group_cpu, group_memory)
        else:
            continue
        files.add(item.path, value.encode(), item.mode)


def _config_file_volume(name: str, files: _Files, default_mode: int | None) -> Any:
    to_paths = [eci.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
        path=path, content=base64.b64encode(content).decode(), mode=mode)
        for path, content, mode in files.items]
    return eci.CreateContainerGroupRequestVolume(
        name=name, type="ConfigFileVolume",
        config_file_volume=eci.CreateContainerGroupRequestVolumeConfigFileVolume(
            config_file_to_path=to_paths, default_mode=default_mode))


def translate_volume(pod: Any, vol: Any, ctx: TranslateContext, group_cpu: float | None,
                     group_memory: float | None, notes: Warnings,
                     budget: Budget | None = None) -> Any:
    """One ECI volume for pod volume ``vol``; file contents are charged to ``budget``."""
    kind = volume_type(vol)
    if kind == "emptyDir":
        ed = vol.empty_dir
        return eci.CreateContainerGroupRequestVolume(
            name=vol.name, type="EmptyDirVolume",
            empty_dir_volume=eci.CreateContainerGroupRequestVolumeEmptyDirVolume(
                medium=ed.medium or None,
                size_limit=str(ed.size_limit) if ed.size_limit else None))
    if kind == "nfs":
        nfs = vol.nfs
        return eci.CreateContainerGroupRequestVolume(
            name=vol.name, type="NFSVolume",
            nfsvolume=eci.CreateContainerGroupRequestVolumeNFSVolume(
                server=nfs.server, path=nfs.path, read_only=bool(nfs.read_only)))
    if kind == "persistentVolumeClaim":
        return claim_volume(vol, ctx)
    if kind == "hostPath":
        # Only a DataCache mount gets here (pod.check_supported refuses the others).
        return eci.CreateContainerGroupRequestVolume(
            name=vol.name, type="HostPathVolume",
            host_path_volume=eci.CreateContainerGroupRequestVolumeHostPathVolume(
                path=vol.host_path.path, type=vol.host_path.type or None))
    files = _Files(vol.name, budget)
    if kind == "secret":
        src = vol.secret
        _secret_files(ctx, src, src.secret_name, notes, files)
        return _config_file_volume(vol.name, files, src.default_mode)
    if kind == "configMap":
        src = vol.config_map
        _config_map_files(ctx, src, notes, files)
        return _config_file_volume(vol.name, files, src.default_mode)
    if kind == "downwardAPI":
        src = vol.downward_api
        _downward_files(pod, src.items, group_cpu, group_memory, files)
        return _config_file_volume(vol.name, files, src.default_mode)
    if kind == "projected":
        src = vol.projected
        for source in src.sources or []:
            if source.secret is not None:
                _secret_files(ctx, source.secret, source.secret.name, notes, files)
            elif source.config_map is not None:
                _config_map_files(ctx, source.config_map, notes, files)
            elif source.downward_api is not None:
                _downward_files(pod, source.downward_api.items, group_cpu, group_memory, files)
            elif source.service_account_token is not None:
                sat = source.service_account_token
                token = ctx.service_account_tokens.get((sat.audience, sat.expiration_seconds))
                if token is None:
                    raise MissingDependency(f"service account token for volume {vol.name}",
                                            "the node could not obtain it")
                files.add(sat.path, token.encode(), None)
                late = expiry_warning(token, sat, vol.name, pod.spec.active_deadline_seconds,
                                      _refreshed(pod))
                if late is not None:
                    notes.append(late)
            else:
                raise InvalidInput(f"volume {vol.name} (projected)",
                                   "a projected source type ECI cannot provide")
        return _config_file_volume(vol.name, files, src.default_mode)
    raise InvalidInput(f"volume {vol.name} ({kind})",
                       f"volume type {kind} is not supported on ECI "
                       f"(supported: {', '.join(SUPPORTED)})")


def translate_volumes(pod: Any, ctx: TranslateContext, group_cpu: float | None,
                      group_memory: float | None, notes: Warnings,
                      budget: Budget | None = None) -> list[Any]:
    vols = list(pod.spec.volumes or [])
    if len(vols) > MAX_VOLUMES:
        raise InvalidInput("pod volumes", f"{len(vols)} volumes, ECI allows {MAX_VOLUMES}")
    return [translate_volume(pod, v, ctx, group_cpu, group_memory, notes, budget)
            for v in vols]


def _refreshed(pod: Any) -> bool:
    """Whether the node renews this pod's tokens (by restart, at 80% of their life)."""
    value = (pod.metadata.annotations or {}).get(REFRESH_ANNOTATION, "")
    return str(value).strip().lower() == "restart"
