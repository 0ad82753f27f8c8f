"""``vk-eci advise --kubeconfig``: the plan from a live cluster.

The node advisor's demand record (a ConfigMap written as the node writes it) and the cluster's
ImageCache objects, read through the real API server: with ``--node`` the caches that node's
advisor owns are its own to retire, a user's cache is supply and never in the plan.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.integration.test_imagecache_controller import cleanup, crd  # noqa: F401 - fixture
from vk_eci.advisor import persist
from vk_eci.advisor.model import ADVISOR_OWNED_LABEL
from vk_eci.advisor.record import DemandRecord

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
CI = ["registry.example.com/ci/base:1", "registry.example.com/ci/tools:2"]


async def _advise(kubeconfig: Path, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "advise", "--kubeconfig", str(kubeconfig),
        "--now", str(NOW), *argv, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _cache(name: str, images: list[str], owner: str | None) -> dict[str, Any]:
    labels = {ADVISOR_OWNED_LABEL: owner} if owner else {}
    return {"apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
            "metadata": {"name": name, "labels": labels}, "spec": {"images": images}}


async def test_advise_plans_from_the_node_record_and_the_clusters_caches(
        crd: Any, kube_api: client.ApiClient, namespace: str) -> None:  # noqa: F811
    node = f"vk-{uuid.uuid4().hex[:6]}"
    record = DemandRecord(window_hours=6.0, since=NOW - 6 * 3600)
    for k in range(60):
        record.add_pod(CI, NOW - k * 300, workload=f"{namespace}/Job/build")
    for img in CI:
        record.add_pull(img, 40.0, NOW - 100)
    await client.CoreV1Api(kube_api).create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="advisor"),
        data={persist.KEY: persist.encode(record, NOW)}))
    objects = client.CustomObjectsApi(kube_api)
    mine, users = f"advisor-old-{node}", f"team-{node}"
    try:
        for body in (_cache(mine, ["registry.example.com/legacy:1"], node),
                     _cache(users, ["registry.example.com/ci/base:1"], None)):
            await objects.create_cluster_custom_object("eci.alibabacloud.com", "v1",
                                                       "imagecaches", body)
        code, out, err = await _advise(crd.kubeconfig, "--configmap", f"{namespace}/advisor",
                                       "--node", node)
        assert code == 0, err
        rows = [r.split() for r in out.splitlines()[1:-1]]
        assert [r[:2] for r in rows if r[0] == "retire"] == [["retire", mine]]
        [create] = [r for r in rows if r[0] == "create"]
        assert set(CI) <= {i.rstrip(",") for i in create}
        assert users not in out  # the user's cache: supply, never planned

        code, out, err = await _advise(crd.kubeconfig, "--configmap", f"{namespace}/advisor",
                                       "--node", node, "-o", "yaml")
        assert code == 0, err
        [new] = [d for d in yaml.safe_load_all(out) if d]
        assert new["metadata"]["labels"] == {ADVISOR_OWNED_LABEL: node}
        assert f"# retire: kubectl delete imagecache {mine}" in out

        code, _, err = await _advise(crd.kubeconfig, "--configmap", f"{namespace}/absent")
        assert code == 2 and "404" in err
    finally:
        await cleanup(crd, mine, users)
