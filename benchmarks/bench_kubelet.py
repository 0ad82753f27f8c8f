"""Benchmark of the kubelet API: request latency with and without the auth cache, against the
bare ECI call underneath (baseline), and ECI calls per ``/stats/summary``.

Runs a local control plane (TokenReview, SubjectAccessReview), the ECI emulator at time scale
0.01 and a ``KubeletServer`` in this process, with ``--pods`` container groups (default 40):

1. ``/containerLogs?tailLines=1``: first request (TokenReview + SubjectAccessReview), then
   ``--requests`` (default 30) sequential requests answered from the auth cache; baseline: the
   same number of bare ``DescribeContainerLog`` calls through ``EciClient``;
2. ``/stats/summary`` uncached (``stats_ttl=0``): latency and ECI calls per request (expected
   ``ceil(pods/20)`` metric calls and the pages of one ``DescribeContainerGroups``).

Goals (judged on the printed figures): one TokenReview and one SubjectAccessReview for every
request of one token (the auth cache), at most ``ceil(pods/20)`` metric calls per summary, and
``/containerLogs`` with cached auth at most 3x the bare ECI call at p50 (it also finds the group).

Bounded: fixed counts, a 300 s overall deadline. Usage:
``python benchmarks/bench_kubelet.py [--pods 40] [--requests 30] [--dir DIR]``.

Each log request looks its group up with ``DescribeContainerGroups`` on the node's interactive
budget (400 a minute of ECI's 2,000: a burst of 40, then one every ~170 ms), so that kubectl
logs/exec never eat the node's own share. The default 30 requests stay inside the burst and
measure the path; with ``--requests 200`` most requests wait for that budget, by design.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from alibabacloud_eci20180808 import models as m
from kubernetes_asyncio import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from report import Report

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.pod_io import EciPodIO
from vk_eci.controlplane import cluster
from vk_eci.emulator import Emulator
from vk_eci.kubelet.server import KubeletConfig, KubeletServer

NODE, CLUSTER, NS = "vk-bench", "bench", "bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return (f"p50 {statistics.median(values) * 1000:.2f} ms, "
            f"p99 {pct(values, 0.99) * 1000:.2f} ms")


async def make_token(cp: cluster.ControlPlane) -> str:
    rbac = f"""
apiVersion: v1
kind: List
items:
- {{apiVersion: v1, kind: Namespace, metadata: {{name: {NS}}}}}
- {{apiVersion: v1, kind: ServiceAccount, metadata: {{name: reader, namespace: {NS}}}}}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {{name: bench-kubelet}}
  rules: [{{apiGroups: [""], resources: [nodes/proxy, nodes/stats], verbs: [get]}}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {{name: bench-kubelet}}
  roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bench-kubelet}}
  subjects: [{{kind: ServiceAccount, name: reader, namespace: {NS}}}]
"""
    await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=rbac)
    out = await asyncio.to_thread(cp.kubectl, "create", "token", "reader", "-n", NS)
    return out.stdout.strip()


async def bench(rep: Report, cp: cluster.ControlPlane, pods: int, requests: int) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(cp.kubeconfig),
                                  client_configuration=configuration)
    async with Emulator(time_scale=0.01, rate_limits={}) as emu, \
            client.ApiClient(configuration) as api:
        eci = EciClient(EciClientConfig(region_id="cn-hangzhou",
                                        credential=AccessKey("AK", "SK"),
                                        endpoint=emu.endpoint, protocol="http",
                                        default_rate_limit=None))
        pod_io = EciPodIO(eci, cluster_name=CLUSTER, node_name=NODE)
        gids = []
        for i in range(pods):
            gids.append(await eci.create_container_group(m.CreateContainerGroupRequest(
                region_id="cn-hangzhou", container_group_name=naming.group_name(NS, f"p{i}"),
                security_group_id="sg-1", v_switch_id="vsw-1",
                tag=[m.CreateContainerGroupRequestTag(key=k, value=v) for k, v in
                     naming.pod_tags(CLUSTER, NODE, NS, f"p{i}", str(uuid.uuid4())).items()],
                container=[m.CreateContainerGroupRequestContainer(
                    name="main", image="busybox:1.36", cpu=1.0, memory=2.0,
                    command=["sh", "-c", "echo hello; sleep infinity"])])))
        for _ in range(300):  # at most 60 s for the last group to start
            if await pod_io.container_state(NS, f"p{pods - 1}", "main") == "Running":
                break
            await asyncio.sleep(0.2)
        token = await make_token(cp)
        server = KubeletServer(KubeletConfig(node_name=NODE, host="127.0.0.1", port=0,
                                             stats_ttl=0.0), api, pod_io)
        await server.start()
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        url = f"https://127.0.0.1:{server.port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with aiohttp.ClientSession(headers=headers) as http:
                async def get(path: str) -> float:
                    t0 = time.perf_counter()
                    async with http.get(url + path, ssl=ctx) as resp:
                        await resp.read()
                        assert resp.status == 200, (path, resp.status)
                    return time.perf_counter() - t0

                cold = await get(f"/containerLogs/{NS}/p0/main?tailLines=1")
                warm = [await get(f"/containerLogs/{NS}/p{i % pods}/main?tailLines=1")
                        for i in range(requests)]
                token_reviews = server.authenticator.reviews
                access_reviews = server.authorizer.reviews
                base = []
                for i in range(requests):
                    t0 = time.perf_counter()
                    await eci.describe_container_log(gids[i % pods], "main", tail=1)
                    base.append(time.perf_counter() - t0)
                rows = [
                    ["/containerLogs first request (TokenReview + SAR)", f"{cold * 1000:.1f} ms"],
                    [f"/containerLogs with cached auth, {requests} requests", ms(warm)],
                    ["baseline: bare DescribeContainerLog",
                     f"{ms(base)} (ratio p50 "
                     f"{statistics.median(warm) / statistics.median(base):.2f}x; "
                     "ours also describes the group)"],
                    [f"auth reviews for {requests + 1} requests with one token",
                     f"{token_reviews} TokenReview, {access_reviews} SubjectAccessReview"]]

                before = len(emu.recorded("DescribeMultiContainerGroupMetric"))
                before_groups = len(emu.recorded("DescribeContainerGroups"))
                rounds = 20
                summary = [await get("/stats/summary") for _ in range(rounds)]
                metric_calls = (len(emu.recorded("DescribeMultiContainerGroupMetric"))
                                - before) / rounds
                group_calls = (len(emu.recorded("DescribeContainerGroups"))
                               - before_groups) / rounds
                rows.append([f"/stats/summary, {pods} pods, uncached",
                             f"{ms(summary)}; {metric_calls:.1f} metric calls (expected "
                             f"{math.ceil(pods / 20)}), {group_calls:.1f} group pages"])
                rep.table(["figure", "value"], rows)
                rep.goal(f"TokenReviews for {requests + 1} requests with one token",
                         token_reviews, "==", 1)
                rep.goal(f"SubjectAccessReviews for {requests + 1} requests with one token",
                         access_reviews, "==", 1)
                rep.goal(f"metric calls per /stats/summary of {pods} pods (ECI's 20 a call)",
                         metric_calls, "<=", math.ceil(pods / 20))
                rep.goal("/containerLogs p50 with cached auth / bare DescribeContainerLog p50",
                         statistics.median(warm) / statistics.median(base), "<=", 3, "x")
        finally:
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=40)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="bench-kubelet-"))
    cp = cluster.up(directory)
    try:
        rep = Report("bench_kubelet", __doc__)
        rep.text(f"Local control plane, emulator at time scale 0.01, {args.pods} groups, the "
                 f"KubeletServer in this process; {args.requests} log requests in a row (the "
                 "node's interactive DescribeContainerGroups budget allows a burst of 40).")
        asyncio.run(asyncio.wait_for(bench(rep, cp, args.pods, args.requests), 300))
        rep.finish()
    finally:
        cluster.down(directory)


if __name__ == "__main__":
    main()
