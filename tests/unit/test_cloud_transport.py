"""The pooled transport under the SDK's models: error answers read as the SDK reads them, and
signatures the SDK's own signing helper would accept (checked against a stub that verifies)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.http import serving
from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey
from vk_eci.cloud.api.errors import NotFound, Retryable, Throttled

R = "cn-hangzhou"


def client_for(port: int, **kw: Any) -> tuple[EciClient, list[float]]:
    sleeps: list[float] = []

    async def record_sleep(delay: float) -> None:
        sleeps.append(delay)

    settings: dict[str, Any] = {"max_attempts": 2, "backoff_base": 0.001, "backoff_cap": 0.01,
                                "protocol": "http"}
    settings.update(kw)
    config = EciClientConfig(region_id=R, credential=AccessKey("AK", "SK"),
                             endpoint=f"127.0.0.1:{port}", **settings)
    return EciClient(config, sleep=record_sleep), sleeps


def answering(status: int, body: str, content_type: str,
              headers: dict[str, str] | None = None) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body.encode(), headers={
            "Content-Type": content_type, **(headers or {})})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_an_xml_error_answer_keeps_its_code_and_request_id() -> None:
    xml = ("<?xml version='1.0' encoding='UTF-8'?><Error><RequestId>R-1</RequestId>"
           "<Code>InvalidContainerGroup.NotFound</Code><Message>gone</Message></Error>")
    async with serving(answering(404, xml, "text/xml;charset=utf-8")) as port:
        client, sleeps = client_for(port)
        try:
            with pytest.raises(NotFound) as info:
                await client.delete_container_group("eci-1")
        finally:
            await client.close()
    assert info.value.code == "InvalidContainerGroup.NotFound"
    assert info.value.request_id == "R-1" and info.value.message == "gone"
    assert info.value.http_status == 404 and not sleeps


async def test_a_throttled_answer_carries_the_servers_retry_after() -> None:
    body = '{"Code": "Throttling.User", "Message": "slow down", "RequestId": "R-2"}'
    app = answering(400, body, "application/json", {"x-acs-retry-after": "1500"})
    async with serving(app) as port:
        client, sleeps = client_for(port, backoff_cap=5.0)
        try:
            with pytest.raises(Throttled) as info:
                await client.describe_regions()
        finally:
            await client.close()
    assert info.value.retry_after == 1.5 and info.value.code == "Throttling.User"
    assert sleeps == [pytest.approx(1.5)]  # the hint, not the tiny backoff, between the two


async def test_a_success_that_is_not_json_is_retried_as_a_bad_response() -> None:
    async with serving(answering(200, "<html>proxy page</html>", "text/html")) as port:
        client, sleeps = client_for(port)
        try:
            with pytest.raises(Retryable) as info:
                await client.describe_regions()
        finally:
            await client.close()
    assert info.value.code == "BadResponse" and len(sleeps) == 1


async def test_the_request_is_signed_over_the_exact_query_it_sends() -> None:
    """A stub verifies the ACS3 signature (with the emulator's independent check) over the
    query as it received and decoded it, so any re-encoding between signing and sending
    (spaces, '+', '/', '&', '=', non-ASCII) fails."""
    from alibabacloud_eci20180808 import models as m

    from vk_eci.emulator.errors import ApiError
    from vk_eci.emulator.signature import Verifier

    verifier = Verifier({"AK": "SK"})
    seen: list[dict[str, str]] = []

    async def verify(request: web.Request) -> web.Response:
        try:
            verifier.verify(request.method, request.path, list(request.query.items()),
                            {k.lower(): v for k, v in request.headers.items()},
                            await request.read())
        except ApiError as e:
            return web.json_response({"Code": e.code, "Message": e.message}, status=e.status)
        seen.append(dict(request.query))
        return web.json_response({"RequestId": "R-3", "Regions": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", verify)
    value = "a b+c/d&e=f*~%20é"
    async with serving(app) as port:
        client, _ = client_for(port)
        try:
            await client._call("DescribeRegions", "describe_regions_with_options",
                               m.DescribeRegionsRequest(region_id=value))
            await client._call("DescribeRegions", "describe_regions_with_options",
                               m.DescribeRegionsRequest(region_id=value))  # a new nonce
        finally:
            await client.close()
    assert [q["RegionId"] for q in seen] == [value, value]


def test_the_proxy_is_read_from_the_environment_as_the_sdk_reads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vk_eci.cloud.api.transport import _env_proxy

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _env_proxy("https", "eci.cn-hangzhou.aliyuncs.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _env_proxy("https", "eci.cn-hangzhou.aliyuncs.com") == "http://proxy.internal:3128"
    assert _env_proxy("http", "127.0.0.1:8080") is None  # HTTP_PROXY is not set
    monkeypatch.setenv("NO_PROXY", ".aliyuncs.com")
    assert _env_proxy("https", "eci.cn-hangzhou.aliyuncs.com") is None
    assert _env_proxy("https", "10.0.0.1:443") == "http://proxy.internal:3128"


async def test_https_verifies_the_endpoints_certificate() -> None:
    """Over HTTPS the endpoint's certificate is checked against the CA bundle the SDK trusts:
    a self-signed one is refused (as a retryable connection failure), never sent secrets."""
    from vk_eci.kubelet.tls import server_context

    served: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.json_response({"RequestId": "R", "Regions": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    context = await server_context(cert_file=None, key_file=None, client_ca=None,
                                   node_name="eci", hosts=["127.0.0.1"])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client, sleeps = client_for(port, protocol="https")
    try:
        with pytest.raises(Retryable) as info:
            await client.describe_regions()
    finally:
        await client.close()
        await runner.cleanup()
    assert info.value.code == "ConnectionError" and "certificate" in info.value.message.lower()
    assert not served and len(sleeps) == 1
