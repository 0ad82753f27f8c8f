"""The emulator's control paths (``/__emulator/*``) beyond loopback: refused without the
control token that ``vk-eci emulator`` prints at start, which also warns that it listens
beyond loopback (docs/SECURITY.md). On loopback they stay open, as tests and demos use them."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest

from tests.fixtures.node import free_port
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration


async def status(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}) as r:
        return r.status


async def test_control_paths_beyond_loopback_need_the_token() -> None:
    async with Emulator(host="0.0.0.0") as emu:
        url = f"http://127.0.0.1:{emu.port}/__emulator/state"
        assert await status(url) == 401
        assert await status(url, {"X-Emulator-Token": "guess"}) == 401
        assert await status(url, emu.control_headers) == 200
        # Pausing the emulator is one of the things a stranger could otherwise do.
        async with aiohttp.ClientSession() as http, \
                http.post(f"http://127.0.0.1:{emu.port}/__emulator/pause") as r:
            assert r.status == 401
        assert not emu.faults.paused
    async with Emulator(host="127.0.0.1") as emu:
        assert await status(f"http://{emu.endpoint}/__emulator/state") == 200


async def test_the_command_prints_its_token_and_warns_beyond_loopback() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "emulator", "--host", "0.0.0.0", "--port", str(port),
        "--access-key-id", "AK", "--access-key-secret", "SK",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        async with asyncio.timeout(30):
            # The ready line comes first, the token right after it.
            first = (await proc.stdout.readline()).decode()
            assert first.startswith("ECI emulator listening"), first
            token_line = (await proc.stdout.readline()).decode()
        assert token_line.startswith("ECI emulator control token: "), token_line
        token = token_line.split(": ", 1)[1].split()[0]
        url = f"http://127.0.0.1:{port}/__emulator/state"
        assert await status(url) == 401
        assert await status(url, {"X-Emulator-Token": token}) == 200
    finally:
        proc.terminate()
        await proc.wait()
    warning = (await proc.stderr.read()).decode()
    assert "WARNING: listening on 0.0.0.0, beyond loopback" in warning
