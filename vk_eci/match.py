"""``vk-eci match -f FILE``: which image cache each pod of a manifest would start from, and why.

Reads Pods and the pod templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and
CronJobs (several YAML documents, or a ``kind: List``), and ranks the account's image caches for
each as the node would (:mod:`vk_eci.cloud.caches.explain`). The caches come from ECI (the node's
region, endpoint and credentials: flags or ``VK_ECI_*`` / ``ALIBABA_CLOUD_*`` variables) or,
with ``--caches-from FILE``, from an exported ``DescribeImageCaches`` answer (JSON or YAML: the
response body with ``ImageCaches``, or a list of caches). Exit status: 0 when every pod can be
created, 1 when one would be blocked (an explicit cache unknown, not Ready or malformed),
2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from alibabacloud_eci20180808.models import DescribeImageCachesResponseBodyImageCaches

from vk_eci.cloud.api.errors import EciError
from vk_eci.cloud.caches.catalog import CacheCatalog
from vk_eci.cloud.caches.decision import CacheChoiceSettings
from vk_eci.cloud.caches.explain import explain, render
from vk_eci.config_values import plain_http_refusal

_TEMPLATE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                   "ReplicationController")


class InputError(ValueError):
    """A file that is not what ``vk-eci match`` reads (the message names it and why)."""


class ExportedCaches:
    """The one client call the catalog needs, answered from an exported listing."""

    def __init__(self, models: Sequence[Any]) -> None:
        self._models = list(models)

    async def describe_image_caches(self, *, ids: Sequence[str] | None = None) -> list[Any]:
        if ids is None:
            return list(self._models)
        return [m for m in self._models if m.image_cache_id in ids]


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None


def load_caches(path: str) -> list[Any]:
    """SDK cache models from an exported ``DescribeImageCaches`` answer."""
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not JSON or YAML: {e}") from None
    if isinstance(data, dict):
        data = (data.get("body") or data).get("ImageCaches", None)
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise InputError(f"{path}: expected a DescribeImageCaches answer (ImageCaches: [...]) "
                         "or a list of caches")
    models = [DescribeImageCachesResponseBodyImageCaches().from_map(c) for c in data]
    for i, model in enumerate(models):
        if not model.image_cache_id:
            raise InputError(f"{path}: cache #{i + 1} has no ImageCacheId")
    return models


def _pods_of(doc: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = doc.get("kind")
    meta = doc.get("metadata") or {}
    title = f"{kind} {meta.get('namespace') or 'default'}/{meta.get('name', '?')}"
    if kind == "List":
        for item in doc.get("items") or []:
            if isinstance(item, dict):
                yield from _pods_of(item, path)
    elif kind == "Pod":
        yield title, doc
    elif kind in _TEMPLATE_KINDS:
        yield title, ((doc.get("spec") or {}).get("template") or {})
    elif kind == "CronJob":
        job = ((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        yield title, (job.get("template") or {})


def load_pods(path: str) -> list[tuple[str, dict[str, Any]]]:
    """(title, pod or pod template) for every pod-bearing object of the manifest."""
    try:
        docs = [d for d in yaml.safe_load_all(_read(path)) if d is not None]
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not YAML: {e}") from None
    pods = [p for d in docs if isinstance(d, dict) for p in _pods_of(d, path)]
    if not pods:
        raise InputError(f"{path}: no Pod or workload with a pod template found")
    return pods


def _catalog(args: argparse.Namespace) -> tuple[CacheCatalog, Any]:
    """The catalog to explain against, and the ECI client to close after (None: a file)."""
    if args.caches_from:
        return CacheCatalog(ExportedCaches(load_caches(args.caches_from))), None
    from vk_eci.cloud.api.client import EciClient, EciClientConfig
    from vk_eci.cloud.api.credentials import CredentialError, credential_from_env

    region = args.region or os.environ.get("VK_ECI_REGION", "")
    if not region:
        raise InputError("--region (or VK_ECI_REGION) is required without --caches-from")
    endpoint = args.eci_endpoint or os.environ.get("VK_ECI_ECI_ENDPOINT") or None
    protocol = args.eci_protocol or os.environ.get("VK_ECI_ECI_PROTOCOL") or "https"
    refused = plain_http_refusal(protocol, endpoint or f"eci.{region}.aliyuncs.com",
                                 bool(getattr(args, "insecure_eci_endpoint", False)))
    if refused:
        raise InputError(refused)
    try:
        credential = credential_from_env()
    except CredentialError as e:
        raise InputError(str(e)) from None
    client = EciClient(EciClientConfig(region_id=region, credential=credential,
                                       endpoint=endpoint, protocol=protocol))
    return CacheCatalog(client), client


async def _run(args: argparse.Namespace) -> int:
    pods = load_pods(args.file)
    catalog, client = _catalog(args)
    settings = CacheChoiceSettings(auto_create_on_miss=args.imagecache_auto_create)
    try:
        try:
            await catalog.sync()
        except EciError as e:
            raise InputError(f"cannot list the image caches: {e}") from None
        blocked = False
        for title, pod in pods:
            explanation = await explain(pod, catalog, settings=settings)
            print("\n".join(render(title, explanation, catalog)))
            blocked = blocked or explanation.blocked
        return 1 if blocked else 0
    finally:
        if client is not None:
            await client.close()


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except InputError as e:
        print(f"vk-eci match: {e}", file=sys.stderr)
        return 2
