"""The one place a pod may use a ``hostPath`` volume: mounting an ECI DataCache.

Alibaba's "Use a DataCache to create a pod" names the bucket with the annotation
``k8s.aliyun.com/eci-data-cache-bucket`` ("you must configure this annotation when you use
DataCaches to create pods") and mounts the cached data with a ``hostPath`` volume whose ``path``
is the DataCache's path (``/model/ms/`` in its example); ECI allow-lists HostPath volumes for
exactly that. Every other ``hostPath`` stays refused: an ECI instance has no host to share.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from vk_eci.cloud.placement.annotations import DATA_CACHE_BUCKET

# Where a DataCache never lives: the sandbox's own system directories.
_SYSTEM = ("/proc", "/sys", "/dev", "/etc", "/run", "/var/run", "/var/lib", "/boot", "/root",
           "/usr", "/bin", "/sbin", "/lib", "/lib64")
# A DataCache path is a directory; the other hostPath types name files, sockets or devices.
_TYPES = (None, "", "Directory", "DirectoryOrCreate")


def host_path_refusal(annotations: Mapping[str, str] | None, volume: Any) -> str | None:
    """Why the ``hostPath`` volume ``volume`` cannot be used, or None when it mounts a
    DataCache of the bucket the pod names."""
    if not (annotations or {}).get(DATA_CACHE_BUCKET, "").strip():
        return (f"hostPath volumes are not supported on a virtual node (only a DataCache "
                f"mount, under the annotation {DATA_CACHE_BUCKET})")
    path = str(volume.host_path.path or "")
    clean = posixpath.normpath(path) if path else ""
    if not path.startswith("/") or clean in ("/", "//"):
        return f"a DataCache hostPath must be an absolute directory below /, not {path!r}"
    if any(clean == s or clean.startswith(s + "/") for s in _SYSTEM):
        return f"{path!r} is a system directory, not a DataCache path"
    if volume.host_path.type not in _TYPES:
        return f"a DataCache is a directory; hostPath type {volume.host_path.type!r} is not"
    return None
