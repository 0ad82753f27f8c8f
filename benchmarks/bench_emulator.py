"""Requests per second the ECI emulator sustains (goal: >= 1,000/s).

The emulator runs in its own process (rate limits off); a client process signs requests with
the official SDK's ACS3 signer and sends them over loopback with aiohttp, N in flight.
Measured: CreateContainerGroup while filling 10,000 groups, then DescribeContainerGroups of
20 groups by id with those 10,000 in memory, and a baseline in the same run: the unsigned
control path ``/__emulator/state`` (aiohttp's own cost, no ECI work).

Bounded: at most ``--groups`` creates and ``--describes`` describes, each phase stops after
``--max-seconds``. Writes benchmarks/results/bench_emulator.md.
Run: ``python benchmarks/bench_emulator.py [--groups 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import sys
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from alibabacloud_tea_openapi.utils import Utils
from report import Report

EMPTY = hashlib.sha256(b"").hexdigest()


def _serve(port_q: Any, stop_ev: Any) -> None:
    from vk_eci.emulator import Emulator

    async def main() -> None:
        async with Emulator(rate_limits={}, time_scale=0.01) as emu:
            port_q.put(emu.port)
            await asyncio.to_thread(stop_ev.wait)

    asyncio.run(main())


def _signed(endpoint: str, action: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
    headers = {"host": endpoint, "x-acs-action": action, "x-acs-version": "2018-08-08",
               "x-acs-date": Utils.get_timestamp(), "x-acs-signature-nonce": Utils.get_nonce(),
               "x-acs-content-sha256": EMPTY}
    req = type("R", (), {"pathname": "/", "query": query, "headers": headers, "method": "POST"})
    headers["Authorization"] = Utils.get_authorization(req, "ACS3-HMAC-SHA256", EMPTY, "AK", "SK")
    return f"http://{endpoint}/?{urlencode(query)}", headers


def _create_query(i: int) -> dict[str, str]:
    return {"RegionId": "cn-hangzhou", "ContainerGroupName": f"bench-{i}",
            "SecurityGroupId": "sg-1", "VSwitchId": "vsw-1", "ClientToken": f"uid-{i}",
            "Container.1.Name": "main", "Container.1.Image": "nginx:1.7.9",
            "Container.1.Cpu": "1.0", "Container.1.Memory": "2.0",
            "Tag.1.Key": "node", "Tag.1.Value": "bench"}


async def _server_cpu(session: aiohttp.ClientSession, endpoint: str) -> float:
    async with session.get(f"http://{endpoint}/__emulator/state") as r:
        return float((await r.json())["cpu_seconds"])


async def _phase(name: str, count: int, concurrency: int, max_s: float,
                 make: Any, session: aiohttp.ClientSession, endpoint: str,
                 check: Any = None, sample_every: int = 1) -> tuple[list[str], float]:
    next_i = 0
    done = 0
    errors = 0
    deadline = time.monotonic() + max_s
    results: list[Any] = []

    async def worker() -> None:
        nonlocal next_i, done, errors
        while next_i < count and time.monotonic() < deadline:
            i = next_i
            next_i += 1
            method, url, headers = make(i)
            async with session.request(method, url, headers=headers) as r:
                body = await r.read()
                if r.status != 200:
                    errors += 1
                elif check is not None and i % sample_every == 0:
                    results.append(check(body))
                done += 1

    cpu0 = await _server_cpu(session, endpoint)
    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    cpu = await _server_cpu(session, endpoint) - cpu0
    rate = done / elapsed if elapsed else 0.0
    # Server CPU per request gives the rate one server core sustains, whatever else the
    # machine (and this client, on the same 2 cores) is doing.
    capacity = done / cpu if cpu > 0 else 0.0
    if errors:
        raise SystemExit(f"{name}: {errors} requests failed")
    row = [name, f"{done:,}", f"{elapsed:.2f}", f"{rate:,.0f}", f"{1000 * cpu / max(done, 1):.3f}",
           f"{capacity:,.0f}", str(errors)]
    print(" | ".join(row), file=sys.stderr)
    return row, rate


async def run(args: argparse.Namespace, endpoint: str, rep: Report) -> None:
    conn = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:
        base_row, base = await _phase(
            "baseline: GET /__emulator/state", args.describes, args.concurrency, args.max_seconds,
            lambda i: ("GET", f"http://{endpoint}/__emulator/state", {}), s, endpoint)
        ids: list[str] = []

        def make_create(i: int) -> tuple[str, str, dict[str, str]]:
            return ("POST", *_signed(endpoint, "CreateContainerGroup", _create_query(i)))

        def keep_id(body: bytes) -> None:
            ids.append(json.loads(body)["ContainerGroupId"])

        create_row, create = await _phase(f"CreateContainerGroup (0 -> {args.groups} groups)",
                                 args.groups, args.concurrency, args.max_seconds, make_create, s,
                                 endpoint, keep_id)
        batches = [json.dumps(ids[i:i + 20]) for i in range(0, len(ids) - 19, 20)] or ["[]"]

        def make_describe(i: int) -> tuple[str, str, dict[str, str]]:
            q = {"RegionId": "cn-hangzhou", "ContainerGroupIds": batches[i % len(batches)]}
            return ("POST", *_signed(endpoint, "DescribeContainerGroups", q))

        def twenty(body: bytes) -> None:
            n = len(json.loads(body)["ContainerGroups"])
            if n != min(20, len(ids)):
                raise SystemExit(f"DescribeContainerGroups returned {n} groups, expected 20")

        # Parsing 60 kB answers costs this client more than the server spends making them:
        # check every 50th.
        describe_row, describe = await _phase(f"DescribeContainerGroups x20 ({len(ids)} in memory)",
                                   args.describes, args.concurrency, args.max_seconds,
                                   make_describe, s, endpoint, twenty, sample_every=50)
        rep.table(["phase", "requests", "seconds", "req/s end-to-end", "server ms CPU/req",
                   "req/s per server core", "errors"], [base_row, create_row, describe_row])
        rep.text(f"Ratios to the baseline (end-to-end): create {create / base:.2f}, describe "
                 f"{describe / base:.2f}. Client and server share this machine's cores; the "
                 "goal is judged on the measured end-to-end rate, not on the per-core figure.")
        rep.goal("CreateContainerGroup, end-to-end", create, ">=", 1000, "req/s")
        rep.goal("DescribeContainerGroups of 20, end-to-end", describe, ">=", 1000, "req/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, default=10_000)
    p.add_argument("--describes", type=int, default=5_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=60.0)
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    port_q, stop_ev = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(port_q, stop_ev), daemon=True)
    server.start()
    try:
        port = port_q.get(timeout=30)
        rep = Report("bench_emulator", __doc__)
        rep.text(f"{args.concurrency} requests in flight; emulator in its own process, rate "
                 "limits off, official SDK's ACS3 signer.")
        asyncio.run(run(args, f"127.0.0.1:{port}", rep))
        rep.finish()
    finally:
        stop_ev.set()
        server.join(10)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
