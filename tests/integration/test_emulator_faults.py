"""Signatures, injected faults, rate limits, pause, the control path and the CLI, all seen
through the official SDK's exception classes (sync and async clients)."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from types import SimpleNamespace

import aiohttp
import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.utils import Utils
from darabonba.exceptions import UnretryableException

from tests.fixtures.emulator import EciCaller
from vk_eci.emulator import Emulator, ManualClock

pytestmark = pytest.mark.integration
R = "cn-hangzhou"
REGIONS = m.DescribeRegionsRequest()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_v2_rpc_signature_is_accepted(emulator: Emulator, mode: str) -> None:
    call = EciCaller(emulator, mode, signature_algorithm="v2")
    resp = await call("describe_container_groups", m.DescribeContainerGroupsRequest(region_id=R))
    assert resp.body.total_count == 0
    assert "Signature" not in emulator.recorded("DescribeContainerGroups")[0]


@pytest.mark.parametrize("algorithm", [None, "v2"])
async def test_unknown_key(emulator: Emulator, mode: str, algorithm: str | None) -> None:
    call = EciCaller(emulator, mode, access_key_id="nobody", signature_algorithm=algorithm)
    with pytest.raises(ClientException) as e:
        await call("describe_regions", REGIONS)
    assert (e.value.code, e.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)


@pytest.mark.parametrize("algorithm", [None, "v2"])
async def test_wrong_secret(emulator: Emulator, mode: str, algorithm: str | None) -> None:
    call = EciCaller(emulator, mode, access_key_secret="wrong", signature_algorithm=algorithm)
    with pytest.raises(ClientException) as e:
        await call("describe_regions", REGIONS)
    assert e.value.code == "SignatureDoesNotMatch"
    assert "wrong" not in e.value.message and "SK" not in e.value.message


async def test_stale_timestamp(mode: str) -> None:
    # The server's clock is an hour ahead: every SDK timestamp is stale to it.
    async with Emulator(auth_clock=lambda: time.time() + 3600) as emu:
        with pytest.raises(ClientException) as e:
            await EciCaller(emu, mode)("describe_regions", REGIONS)
        assert e.value.code == "InvalidTimeStamp.Expired"


async def test_reused_nonce_is_refused(emulator: Emulator) -> None:
    """Replay one request signed by the SDK's own signer: the second is refused."""
    headers = {"host": emulator.endpoint, "x-acs-action": "DescribeRegions",
               "x-acs-version": "2018-08-08", "x-acs-date": Utils.get_timestamp(),
               "x-acs-signature-nonce": "nonce-1",
               "x-acs-content-sha256": hashlib.sha256(b"").hexdigest()}
    req = SimpleNamespace(pathname="/", query={}, headers=headers, method="POST")
    headers["Authorization"] = Utils.get_authorization(
        req, "ACS3-HMAC-SHA256", hashlib.sha256(b"").hexdigest(), "AK", "SK")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://{emulator.endpoint}/", headers=headers) as r:
            assert r.status == 200
        async with s.post(f"http://{emulator.endpoint}/", headers=headers) as r:
            body = await r.json()
            assert (r.status, body["Code"]) == (400, "SignatureNonceUsed")
            assert set(body) >= {"RequestId", "Code", "Message", "HostId", "Recommend"}


@pytest.mark.parametrize(("code", "exc", "status"), [
    ("Throttling.User", ClientException, 400),
    ("InternalError", ServerException, 500),
    ("ServiceUnavailable", ServerException, 503),
])
async def test_injected_errors(emulator: Emulator, eci_call: EciCaller, code: str,
                               exc: type[Exception], status: int) -> None:
    emulator.faults.inject("DescribeRegions", code, count=2)
    for _ in range(2):
        with pytest.raises(exc) as e:
            await eci_call("describe_regions", REGIONS)
        assert (e.value.code, e.value.status_code) == (code, status)  # type: ignore[attr-defined]
    await eci_call("describe_regions", REGIONS)  # the fault was bounded to two requests
    # Other actions were never affected.
    await eci_call("describe_image_caches", m.DescribeImageCachesRequest(region_id=R))


async def test_error_rate_is_partial(emulator: Emulator, eci_call: EciCaller) -> None:
    emulator.faults.throttle("DescribeRegions", rate=0.5)
    failures = 0
    for _ in range(40):
        try:
            await eci_call("describe_regions", REGIONS)
        except ClientException as e:
            assert e.code == "Throttling.User"
            failures += 1
    assert 5 < failures < 35


async def test_retry_after_header_gives_throttling_exception(emulator: Emulator,
                                                             eci_call: EciCaller) -> None:
    emulator.faults.inject("DescribeRegions", "Throttling.Api", retry_after=2.0)
    with pytest.raises(ThrottlingException) as e:
        await eci_call("describe_regions", REGIONS)
    assert e.value.code == "Throttling.Api"


async def test_rate_limit_per_minute(mode: str) -> None:
    async with Emulator(clock=ManualClock(), rate_limits={"DescribeRegions": 3}) as emu:
        call = EciCaller(emu, mode)
        for _ in range(3):
            await call("describe_regions", REGIONS)
        with pytest.raises(ClientException) as e:
            await call("describe_regions", REGIONS)
        assert (e.value.code, e.value.status_code) == ("Throttling.User", 400)
        await call("describe_container_groups", m.DescribeContainerGroupsRequest(region_id=R))


async def test_latency(emulator: Emulator, eci_call: EciCaller) -> None:
    emulator.faults.set_latency(0.3, "DescribeRegions")
    start = time.monotonic()
    await eci_call("describe_regions", REGIONS)
    assert time.monotonic() - start >= 0.3


async def test_pause_hang_and_reset(emulator: Emulator, mode: str) -> None:
    call = EciCaller(emulator, mode, read_timeout=500)
    emulator.faults.pause()
    with pytest.raises(UnretryableException):
        await call("describe_regions", REGIONS)
    emulator.faults.resume()
    await call("describe_regions", REGIONS)
    emulator.faults.pause("reset")
    with pytest.raises(UnretryableException):
        await call("describe_regions", REGIONS)
    emulator.faults.resume()
    await call("describe_regions", REGIONS)


async def test_http_control_path(emulator: Emulator, eci_call: EciCaller) -> None:
    base = f"http://{emulator.endpoint}/__emulator"
    async with aiohttp.ClientSession(headers=emulator.control_headers) as s:
        async with s.post(f"{base}/faults", json={"errors": [
                {"action": "DescribeRegions", "code": "ServiceUnavailable", "count": 1}]}) as r:
            assert r.status == 200
        with pytest.raises(ServerException) as e:
            await eci_call("describe_regions", REGIONS)
        assert e.value.code == "ServiceUnavailable"
        async with s.post(f"{base}/pause", json={"mode": "reset"}) as r:
            assert (await r.json())["paused"] == "reset"
        with pytest.raises(UnretryableException):
            await eci_call("describe_regions", REGIONS)
        async with s.post(f"{base}/resume") as r:
            assert (await r.json())["paused"] is None
        await eci_call("describe_regions", REGIONS)
        async with s.post(f"{base}/faults", json={"out_of_stock": True}) as r:
            assert (await r.json())["out_of_stock"] is True
        async with s.delete(f"{base}/faults") as r:
            assert (await r.json())["out_of_stock"] is False
        before = emulator.clock.now()
        async with s.post(f"{base}/clock", json={"seconds": 30}) as r:
            assert (await r.json())["now"] == before + 30
        async with s.post(f"{base}/faults", json={"errors": [{"action": "X"}]}) as r:
            assert r.status == 400 and "code" in (await r.json())["error"]


async def test_unknown_action_and_version(emulator: Emulator) -> None:
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.models import OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions

    client = Client(emulator.sdk_config())
    params = Params(action="LaunchRocket", version="2018-08-08", protocol="HTTP", pathname="/",
                    method="POST", auth_type="AK", style="RPC", req_body_type="formData",
                    body_type="json")
    with pytest.raises(ClientException) as e:
        await client.call_api_async(params, OpenApiRequest(query={}), RuntimeOptions())
    assert e.value.code == "InvalidAction.NotFound"
    params.action, params.version = "DescribeRegions", "2099-01-01"
    with pytest.raises(ClientException) as e:
        await client.call_api_async(params, OpenApiRequest(query={}), RuntimeOptions())
    assert e.value.code == "InvalidVersion"


async def test_cli_serves_until_interrupted() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vk_eci", "emulator", "--port", "0", "--access-key-id", "AK",
        "--access-key-secret", "SK", "--time-scale", "0.5", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert "listening on http://127.0.0.1:" in line
        endpoint = line.split("http://")[1].split()[0]
        emu = SimpleNamespace(sdk_config=lambda **kw: _config(endpoint, **kw))
        resp = await EciCaller(emu, "async")("describe_regions", REGIONS)  # type: ignore[arg-type]
        assert resp.body.regions[0].region_id == "cn-hangzhou"
    finally:
        proc.send_signal(2)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


def _config(endpoint: str, **kw: object) -> object:
    from alibabacloud_tea_openapi.models import Config

    return Config(access_key_id="AK", access_key_secret="SK", endpoint=endpoint,
                  protocol="http", region_id=R, **kw)


def test_bad_time_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        Emulator(time_scale=0)
