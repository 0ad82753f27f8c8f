"""``vk-eci advise``: the cache plan for observed demand, as a table or as ImageCache YAML.

Demand comes from a file (``--demand``: the node advisor's own record -- the ``demand.json`` of
its ConfigMap, ``vk_eci.advisor.persist`` -- or JSON/YAML listing image sets with the fields of
``ImageSetDemand``: ``images``, ``pods``, ``window_hours``, optional ``pull_seconds``,
``image_gib``, ``workloads``; or ``{"demand": [...]}``) or from a live cluster (``--kubeconfig``
and ``--configmap NS/NAME`` or ``--node NAME``: that node's advisor record). The existing caches
come from a file of ImageCache objects (``--caches``) or from the cluster's (``--kubeconfig``).
With ``--node``, the caches that node's advisor owns are planned as its own (kept, updated or
retired) and ``-o yaml`` labels new ones for it; without, they are supply like a user's. Exit
status: 0, or 2 for bad input (the message names the file and the reason).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from vk_eci.advisor import persist
from vk_eci.advisor.model import Action, Budget, ExistingCache, ImageSetDemand, Plan
from vk_eci.advisor.objects import OWNER, ObjectError, existing_from_object, imagecache_object
from vk_eci.advisor.planner import plan

__all__ = ["AdviseError", "add_arguments", "load_caches", "load_demand", "main", "render_table"]

_DEFAULT = Budget()
_FIELDS = {"images", "pods", "window_hours", "pull_seconds", "image_gib", "workloads"}


class AdviseError(ValueError):
    """Input ``vk-eci advise`` cannot use; the message names it and why."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demand", metavar="FILE",
                   help="observed demand: JSON/YAML list of image sets (- for stdin)")
    p.add_argument("--caches", metavar="FILE",
                   help="existing ImageCache objects (YAML/JSON: documents, a List or a list) "
                        "instead of the cluster's")
    p.add_argument("--kubeconfig", type=Path,
                   help="read the cluster's ImageCache objects (and --configmap) with this")
    p.add_argument("--configmap", metavar="NS/NAME",
                   help="the node advisor's demand record (ConfigMap) to plan from (default "
                        "with --node: kube-system/vk-eci-advisor-NODE)")
    p.add_argument("--node", metavar="NAME",
                   help="plan as this node's advisor: its caches are its own to keep, update or "
                        "retire (default: every advisor's cache counts as supply)")
    p.add_argument("--window", type=float, default=6.0, metavar="HOURS",
                   help="demand window of the node's record (its --imagecache-advisor-window)")
    p.add_argument("--max-caches", type=int, default=_DEFAULT.max_caches)
    p.add_argument("--max-gib", type=int, default=_DEFAULT.max_gib)
    p.add_argument("--cost-per-gib-day", type=float, default=_DEFAULT.cost_per_gib_day,
                   help="pull seconds per day one GiB·day of cache must save (default 1)")
    p.add_argument("--max-images", type=int, default=_DEFAULT.max_images)
    p.add_argument("-o", "--output", choices=["table", "yaml"], default="table")
    p.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)


def _parse(text: str, path: str) -> Any:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise AdviseError(f"{path}: not JSON or YAML: {e}") from None
    return docs[0] if len(docs) == 1 else docs


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise AdviseError(f"{path}: cannot read: {e.strerror}") from None


def _one_demand(item: Any, where: str) -> ImageSetDemand:
    if not isinstance(item, dict):
        raise AdviseError(f"{where}: expected a mapping with images, pods, window_hours")
    unknown = set(item) - _FIELDS
    if unknown:
        raise AdviseError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    images = item.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        raise AdviseError(f"{where}: images must be a non-empty list of image references")
    try:
        pods = float(item.get("pods", 0))
        window = float(item.get("window_hours", 0))
        pull = {str(k): float(v) for k, v in (item.get("pull_seconds") or {}).items()}
        gib = {str(k): float(v) for k, v in (item.get("image_gib") or {}).items()}
    except (TypeError, ValueError, AttributeError) as e:
        raise AdviseError(f"{where}: {e}") from None
    if pods < 0 or window <= 0:
        raise AdviseError(f"{where}: pods must be >= 0 and window_hours > 0")
    workloads = item.get("workloads") or []
    if not isinstance(workloads, list):
        raise AdviseError(f"{where}: workloads must be a list")
    return ImageSetDemand(tuple(images), pods, window, pull, gib,
                          tuple(str(w) for w in workloads))


def demand_from_data(data: Any, where: str) -> list[ImageSetDemand]:
    if isinstance(data, dict) and "demand" in data:
        data = data["demand"]
    if not isinstance(data, list):
        raise AdviseError(f"{where}: expected a list of image sets (or demand: [...])")
    return [_one_demand(item, f"{where}: image set #{n}") for n, item in enumerate(data, 1)]


def demand_from_text(text: str, where: str, *, window_hours: float,
                     now: float) -> list[ImageSetDemand]:
    """The node advisor's record, or a plain list of image sets."""
    data = _parse(text, where)
    if isinstance(data, dict) and "version" in data:
        try:
            record = persist.decode(text, window_hours=window_hours)
        except persist.StateError as e:
            raise AdviseError(f"{where}: {e}") from None
        return record.demand(now)
    return demand_from_data(data, where)


def load_demand(path: str, *, window_hours: float = 6.0,
                now: float | None = None) -> list[ImageSetDemand]:
    when = time.time() if now is None else now
    return demand_from_text(_read(path), path, window_hours=window_hours, now=when)


def caches_from_data(data: Any, where: str, owner: str = OWNER) -> list[ExistingCache]:
    if isinstance(data, dict):
        data = data.get("items", [data]) if data.get("kind") != "ImageCache" else [data]
    if not isinstance(data, list):
        raise AdviseError(f"{where}: expected ImageCache objects")
    out = []
    for obj in data:
        if not isinstance(obj, dict) or obj.get("kind", "ImageCache") != "ImageCache":
            raise AdviseError(f"{where}: {obj.get('kind') if isinstance(obj, dict) else obj!r} "
                              "is not an ImageCache")
        try:
            cache = existing_from_object(obj, owner)
        except ObjectError as e:
            raise AdviseError(f"{where}: {e}") from None
        if cache is not None:
            out.append(cache)
    return out


def load_caches(path: str, owner: str = OWNER) -> list[ExistingCache]:
    return caches_from_data(_parse(_read(path), path), path, owner)


async def _from_cluster(args: argparse.Namespace) -> tuple[Any, list[ExistingCache]]:
    from kubernetes_asyncio.client.exceptions import ApiException

    from vk_eci.cluster.kube.api import KubeConfigError, api_client

    try:
        api = await api_client(args.kubeconfig)
    except KubeConfigError as e:
        raise AdviseError(str(e)) from None
    async with api:
        try:
            return await _read_cluster(api, args)
        except ApiException as e:
            raise AdviseError(f"cluster: {e.status} {e.reason}") from None


async def _read_cluster(api: Any, args: argparse.Namespace) -> tuple[Any, list[ExistingCache]]:
    from kubernetes_asyncio import client

    record = None
    if args.configmap:
        ns, _, name = args.configmap.partition("/")
        if not ns or not name:
            raise AdviseError(f"--configmap {args.configmap!r}: expected NS/NAME")
        cm = await client.CoreV1Api(api).read_namespaced_config_map(name, ns)
        record = cm.data or {}
    listed = await client.CustomObjectsApi(api).list_cluster_custom_object(
        "eci.alibabacloud.com", "v1", "imagecaches")
    caches = [] if args.caches else caches_from_data(listed.get("items", []), "cluster",
                                                     _owner(args))
    return record, caches


def _record_demand(data: dict[str, str], where: str, args: argparse.Namespace,
                   now: float) -> list[ImageSetDemand]:
    text = data.get(persist.KEY)
    if text is None:
        raise AdviseError(f"{where}: no {persist.KEY} key")
    return demand_from_text(text, f"{where} {persist.KEY}", window_hours=args.window, now=now)


def _owner(args: argparse.Namespace) -> str:
    from vk_eci.cluster.advising.caches import owner_value

    return owner_value(args.node) if args.node else OWNER


def render_table(p: Plan) -> str:
    heads = ["ACTION", "NAME", "IMAGES", "SIZE GiB", "SAVED s/day", "COST/day", "WORKLOADS"]
    rows = [heads]
    for c in p.caches:
        imgs = ", ".join(c.images)
        rows.append([c.action.value, c.name, f"{len(c.images)}: {imgs}", str(c.size_gib),
                     f"{c.saved_seconds_per_day:.0f}", f"{c.cost_per_day:.0f}",
                     ", ".join(c.workloads) or "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True))
             + "  " + r[-1]
             for r in rows]
    lines.append(f"expected saving {p.expected_saved_seconds_per_day:.0f} pull-s/day with "
                 f"{p.total_gib} GiB of advisor caches ({p.algorithm})")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_yaml(p: Plan, owner: str = OWNER) -> str:
    head = [f"# retire: kubectl delete imagecache {c.name}"
            for c in p.caches if c.action is Action.RETIRE]
    objs = [imagecache_object(c, owner) for c in p.caches if c.action is not Action.RETIRE]
    body = yaml.safe_dump_all(objs, sort_keys=False) if objs else ""
    return "\n".join(head) + ("\n" if head else "") + body


def run(args: argparse.Namespace) -> Plan:
    now = time.time() if args.now is None else args.now
    if args.node and not args.configmap:
        args.configmap = "kube-system/" + f"vk-eci-advisor-{args.node}"[:253].rstrip("-.")
    if not args.demand and not (args.kubeconfig and args.configmap):
        raise AdviseError("no demand: give --demand FILE, or --kubeconfig and --configmap or "
                          "--node")
    if not args.window > 0:
        raise AdviseError(f"--window {args.window}: must be a positive number of hours")
    demand: list[ImageSetDemand] = []
    if args.demand:
        demand = load_demand(args.demand, window_hours=args.window, now=now)
    caches = load_caches(args.caches, _owner(args)) if args.caches else []
    if args.kubeconfig:
        record, listed = asyncio.run(_from_cluster(args))
        caches += listed
        if record is not None:
            demand += _record_demand(record, f"ConfigMap {args.configmap}", args, now)
    for flag in ("max_caches", "max_gib", "max_images"):
        if getattr(args, flag) < 0:
            raise AdviseError(f"--{flag.replace('_', '-')} must be >= 0")
    budget = Budget(max_caches=args.max_caches, max_gib=args.max_gib,
                    cost_per_gib_day=args.cost_per_gib_day, max_images=args.max_images)
    return plan(demand, caches, budget, now=now)


def main(args: argparse.Namespace) -> int:
    try:
        result = run(args)
    except AdviseError as e:
        print(f"vk-eci advise: {e}", file=sys.stderr)
        return 2
    out = render_yaml(result, _owner(args)) if args.output == "yaml" else render_table(result)
    sys.stdout.write(out)
    return 0
