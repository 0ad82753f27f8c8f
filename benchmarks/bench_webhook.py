"""Admission webhook latency at 50 pods/s: each pod is one /mutate then one /validate call
(as the API server makes them), over TLS to the webhook of vk-eci in a process of its own,
with a profile of 50 namespace rules and a selector. Baseline, same run: /healthz over the same
connections (the TLS and HTTP floor), so the ratio is what deciding a pod adds.

Not counted: the API server's own share (it adds its round trip to the webhook and its JSON
patch); the figures are the webhook's answer time as its client sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from report import Report

K = "k8s.aliyun.com/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _profile() -> Any:
    import yaml

    from vk_eci.cloud.policy.profile import parse_profile
    rules = [{"name": f"team-{i}", "namespaces": [f"team-{i}"], "allow": {
        "ramRoles": [f"role-{i}"], "securityGroups": [f"sg-{i}"], "maxCpu": 16}}
        for i in range(50)]
    return parse_profile({
        "selectors": json.dumps([{"name": "eci", "namespaceSelector": {
            "matchLabels": {"eci": "true"}}, "effect": {"annotations": {
                K + "eci-ntp-server": "100.100.5.1"}, "labels": {"via": "eci"}}}]),
        "policy": yaml.safe_dump({"rules": rules})})


def _serve(port: int, cert: str, key: str) -> None:
    from vk_eci.admission.review import Webhook
    from vk_eci.admission.server import serve

    profile = _profile()
    hook = Webhook(lambda: profile, lambda ns: {"eci": "true"}, "vk",
                   {"kubernetes.io/hostname": "vk"},
                   {"key": "virtual-kubelet.io/provider", "operator": "Exists",
                    "effect": "NoSchedule"})
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def main() -> None:
        await serve(hook, "127.0.0.1", port, ctx)
        await asyncio.Event().wait()

    asyncio.run(main())


def _review(i: int) -> dict[str, Any]:
    ns = f"team-{i % 50}"
    pod = {"metadata": {"name": f"p{i}", "namespace": ns, "labels": {"app": "web"},
                        "annotations": {K + "eci-ram-role-name": f"role-{i % 50}",
                                        K + "eci-security-group": f"sg-{i % 50}"}},
           "spec": {"containers": [{"name": f"c{j}", "image": "nginx:1.25", "resources": {
               "requests": {"cpu": "500m", "memory": "1Gi"}}} for j in range(3)]}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(i), "kind": {"kind": "Pod"}, "operation": "CREATE", "namespace": ns,
        "object": pod}}


async def _drive(port: int, rate: float, seconds: float) -> dict[str, list[float]]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    base = f"https://127.0.0.1:{port}"
    out: dict[str, list[float]] = {"healthz": [], "mutate": [], "validate": [], "pod": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        for _ in range(100):  # up and warm
            try:
                async with http.get(f"{base}/healthz") as r:
                    await r.read()
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)

        async def one_pod(i: int) -> None:
            t0 = time.perf_counter()
            async with http.get(f"{base}/healthz") as r:
                await r.read()
            t1 = time.perf_counter()
            review = _review(i)
            async with http.post(f"{base}/mutate", json=review) as r:
                assert (await r.json())["response"]["allowed"]
            t2 = time.perf_counter()
            async with http.post(f"{base}/validate", json=review) as r:
                assert (await r.json())["response"]["allowed"]
            t3 = time.perf_counter()
            out["healthz"].append(t1 - t0)
            out["mutate"].append(t2 - t1)
            out["validate"].append(t3 - t2)
            out["pod"].append(t3 - t1)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one_pod(i)))
        await asyncio.gather(*tasks)
    return out


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if q < 100 else max(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=50.0, help="pods per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vk_eci.kubelet.tls import self_signed

    cert, key = self_signed("bench", ["127.0.0.1"])
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "c.pem").write_bytes(cert)
        (Path(d) / "k.pem").write_bytes(key)
        port = _free_port()
        server = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(port, str(Path(d) / "c.pem"), str(Path(d) / "k.pem")),
            daemon=True)
        server.start()
        try:
            got = asyncio.run(_drive(port, args.rate, args.seconds))
        finally:
            server.terminate()
            server.join(5)
    rep = Report("bench_webhook", __doc__)
    rows = [[what, len(v), f"{_ms(v, 50):.2f}", f"{_ms(v, 99):.2f}", f"{max(v) * 1000:.2f}"]
            for what, v in got.items()]
    rep.table(["call", "calls", "p50 ms", "p99 ms", "max ms"], rows,
              title=f"{args.rate:g} pods/s for {args.seconds:g} s (pod = mutate + validate)")
    floor = _ms(got["healthz"], 50)
    rep.text(f"Pod admission p50 is {_ms(got['pod'], 50) / floor:.1f}x the /healthz floor "
             f"({floor:.2f} ms).")
    # A tenth of the chart's timeoutSeconds (5 s): far from the API server giving up on it.
    rep.goal("pod admission p99 (mutate + validate)", _ms(got["pod"], 99), "<=", 500, unit="ms")
    rep.finish()
    return 0 if rep.all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
