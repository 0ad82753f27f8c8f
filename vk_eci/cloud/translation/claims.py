"""``persistentVolumeClaim`` volumes → ECI volumes, from the claim's bound PersistentVolume.

ECI mounts NFS and NAS (``NFSVolume``) and cloud disks (``DiskVolume``) itself; the node reads
the claim and its PV (see :class:`vk_eci.provider.ClaimData`) and sends their source:

- PV ``nfs`` → ``NFSVolume`` (server, path, readOnly);
- PV ``csi`` with driver ``nasplugin.csi.alibabacloud.com`` → ``NFSVolume`` from its
  ``volumeAttributes`` ``server`` and ``path`` (Alibaba's NAS CSI driver);
- PV ``csi`` with driver ``diskplugin.csi.alibabacloud.com`` → ``DiskVolume`` with ``DiskId`` =
  the ``volumeHandle`` (``d-…``), ``FsType`` (default ext4) and ``DiskSize`` = the PV's capacity
  in GiB, rounded up.

A claim that does not exist or is not bound yet is a :class:`MissingDependency`
(``ClaimNotFound`` / ``ClaimNotBound`` events; retried, as the kubelet waits to mount it); a PV
source ECI cannot mount is :class:`InvalidInput` with an ``UnsupportedPersistentVolume`` event.
"""

from __future__ import annotations

import math
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.errors import InvalidInput, MissingDependency
from vk_eci.cloud.placement.specs import parse_quantity
from vk_eci.cloud.translation.context import TranslateContext

NAS_DRIVER = "nasplugin.csi.alibabacloud.com"
DISK_DRIVER = "diskplugin.csi.alibabacloud.com"
MOUNTABLE = f"nfs, csi {NAS_DRIVER}, csi {DISK_DRIVER}"


def _nfs(name: str, server: str, path: str, read_only: bool) -> Any:
    return eci.CreateContainerGroupRequestVolume(
        name=name, type="NFSVolume", nfsvolume=eci.CreateContainerGroupRequestVolumeNFSVolume(
            server=server, path=path or "/", read_only=read_only))


def claim_volume(vol: Any, ctx: TranslateContext) -> Any:
    """The ECI volume for pod volume ``vol`` (a ``persistentVolumeClaim``)."""
    src = vol.persistent_volume_claim
    name = src.claim_name
    claim = ctx.claims.get(name)
    if claim is None:
        raise MissingDependency(f"persistentVolumeClaim {name}", f"volume {vol.name} needs it",
                                event="ClaimNotFound")
    if claim.phase != "Bound":
        raise MissingDependency(f"bound persistentVolumeClaim {name}",
                                f"volume {vol.name} needs it (the claim is {claim.phase})",
                                event="ClaimNotBound")
    read_only = bool(src.read_only) or claim.read_only
    attrs = claim.attributes
    thing = f"volume {vol.name} (persistentVolumeClaim {name}, PersistentVolume " \
            f"{claim.volume_name})"
    if claim.source == "nfs":
        return _nfs(vol.name, attrs.get("server", ""), attrs.get("path", "/"), read_only)
    driver = attrs.get("driver", "")
    if claim.source == "csi" and driver == NAS_DRIVER:
        if not attrs.get("server"):
            raise InvalidInput(thing, f"the {NAS_DRIVER} volume has no 'server' attribute",
                               event="UnsupportedPersistentVolume")
        return _nfs(vol.name, attrs["server"], attrs.get("path", "/"), read_only)
    if claim.source == "csi" and driver == DISK_DRIVER:
        size = None
        if claim.capacity:
            size = math.ceil(parse_quantity(claim.capacity, thing) / 2**30)
        return eci.CreateContainerGroupRequestVolume(
            name=vol.name, type="DiskVolume",
            disk_volume=eci.CreateContainerGroupRequestVolumeDiskVolume(
                disk_id=attrs.get("volumeHandle"), fs_type=attrs.get("fsType") or "ext4",
                disk_size=size))
    source = f"csi driver {driver}" if claim.source == "csi" else f"source {claim.source}"
    raise InvalidInput(thing, f"{source} cannot be mounted by ECI (supported: {MOUNTABLE})",
                       event="UnsupportedPersistentVolume")
