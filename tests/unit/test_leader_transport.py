"""Leader election through a broken connection: an attempt that cannot reach the API server,
or that the API server does not answer in time, is a failed attempt (False), never an error
that ends the election (and with it a standby's process)."""

from __future__ import annotations

import asyncio
import socket
import time

from kubernetes_asyncio import client

from vk_eci.cluster.kube.fence import Fence
from vk_eci.cluster.kube.leader import LeaderElector


def _api(port: int) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    return client.ApiClient(configuration)


async def test_a_refused_connection_is_a_failed_attempt() -> None:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        async with _api(port) as api:
            fence = Fence(open_=False)
            elector = LeaderElector(api, "lead", "ns", "me", lease_duration=3,
                                    renew_deadline=2, retry_period=0.5, fence=fence)
            assert await elector.try_acquire_or_renew() is False
            assert not fence.is_open


async def test_an_unanswered_attempt_ends_within_its_bound() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # accepts, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with _api(port) as api:
            elector = LeaderElector(api, "lead", "ns", "me", lease_duration=3,
                                    renew_deadline=2, retry_period=0.5)
            started = time.monotonic()
            assert await elector.try_acquire_or_renew(within=0.5) is False
            assert time.monotonic() - started < 2.0
    finally:
        server.close()
