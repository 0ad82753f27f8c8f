"""vk_eci.cloud.api.errors: SDK exceptions → our classes; the client's backoff and rate limiter."""

from __future__ import annotations

import random
import threading

import pytest
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)

from vk_eci.cloud.api.client import EciClient, EciClientConfig
from vk_eci.cloud.api.credentials import AccessKey, CredentialError, credential_from_env
from vk_eci.cloud.api.errors import (
    EciError,
    InvalidInput,
    NotFound,
    OutOfStock,
    Permanent,
    QuotaExceeded,
    Retryable,
    Throttled,
    classify,
)
from vk_eci.cloud.api.ratelimit import TokenBucket


def _client_exc(status: int, code: str, message: str = "boom") -> ClientException:
    data = {"RequestId": "req-1", "Code": code, "Message": message}
    cls = ServerException if status >= 500 else ClientException
    text = f"code: {status}, {message} request id: req-1"
    return cls(status_code=status, code=code, message=text, data=data, request_id="req-1")


@pytest.mark.parametrize(("status", "code", "expected"), [
    (400, "Throttling.User", Throttled),
    (400, "Throttling", Throttled),
    (400, "Throttling.Api", Throttled),
    (500, "InternalError", Retryable),
    (503, "ServiceUnavailable", Retryable),
    (404, "InvalidContainerGroup.NotFound", NotFound),
    (400, "InvalidParameter", InvalidInput),
    (400, "MissingParameter.RegionId", InvalidInput),
    (403, "Forbidden.RAM", Permanent),
    (400, "IncorrectStatus.Processing", Retryable),
    # ECI's metadata: the daily vCPU quota is not a rate; seconds of backoff cannot help.
    (403, "Throttling.Vcpu.PerDay", QuotaExceeded),
    (400, "RecommendEmpty.InstanceTypeNoStock", OutOfStock),
    (400, "OperationDenied.NoStock", OutOfStock),
])
def test_classify_response_errors(status: int, code: str, expected: type[EciError]) -> None:
    exc = _client_exc(status, code)
    err = classify(exc)
    assert type(err) is expected
    assert err.code == code
    assert err.http_status == status
    assert err.request_id == "req-1"
    assert err.message.endswith("boom")


def test_throttling_exception_keeps_retry_after_in_seconds() -> None:
    exc = ThrottlingException(status_code=400, code="Throttling.User", message="slow down",
                              data={"Message": "slow down"}, retry_after=1500,
                              request_id="r")
    err = classify(exc)
    assert isinstance(err, Throttled)
    assert err.retry_after == pytest.approx(1.5)


def test_not_found_is_permanent_and_throttled_is_not() -> None:
    assert isinstance(classify(_client_exc(404, "X.NotFound")), Permanent)
    assert not isinstance(classify(_client_exc(400, "Throttling.User")), Permanent)


def test_messages_never_carry_secrets() -> None:
    exc = _client_exc(400, "InvalidParameter", "bad AccessKeySecret=abc123 given")
    err = classify(exc)
    assert "abc123" not in str(err)


def test_invalid_input_names_the_thing_and_reason() -> None:
    err = InvalidInput("volume data (hostPath)", "volume type not supported on ECI")
    assert err.thing == "volume data (hostPath)"
    assert "hostPath" in str(err) and "not supported" in str(err)
    assert isinstance(err, Permanent)


def test_plain_timeouts_and_connection_errors_are_retryable() -> None:
    assert isinstance(classify(TimeoutError()), Retryable)
    assert classify(ConnectionRefusedError()).code == "ConnectionError"
    assert isinstance(classify(RuntimeError("x")), Permanent)


async def test_refused_connection_through_the_sdk_is_retryable_and_retried() -> None:
    sleeps: list[float] = []

    async def record_sleep(delay: float) -> None:
        sleeps.append(delay)

    # Port 9 (discard) is closed on loopback: the SDK fails to connect.
    config = EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                             endpoint="127.0.0.1:9", protocol="http", max_attempts=3,
                             backoff_base=0.01, connect_timeout=1, read_timeout=1)
    client = EciClient(config, sleep=record_sleep)
    with pytest.raises(Retryable) as info:
        await client.describe_regions()
    assert info.value.code == "ConnectionError"
    assert info.value.__cause__ is not None  # chained to the SDK exception
    assert len(sleeps) == 2  # three attempts, two waits


def test_backoff_is_full_jitter_capped_and_honours_hint() -> None:
    config = EciClientConfig(region_id="r", credential=AccessKey("a", "b"), backoff_base=1.0,
                             backoff_cap=8.0)
    client = EciClient(config, rng=random.Random(7))
    for attempt in range(1, 8):
        for _ in range(50):
            d = client.backoff(attempt, None)
            assert 0.0 <= d <= min(8.0, 2.0 ** attempt)
    assert client.backoff(1, 5.0) >= 5.0
    assert client.backoff(1, 100.0) <= 8.0  # a hint never makes us wait past the cap


def test_access_key_repr_hides_secret() -> None:
    assert "SK-SECRET" not in repr(AccessKey("AK", "SK-SECRET"))


async def _grant_times(per_minute: float, calls: int) -> list[float]:
    """When a bucket of ``per_minute`` grants ``calls`` back-to-back calls (a fake clock)."""
    now = [0.0]

    async def fake_sleep(delay: float) -> None:
        now[0] += delay

    bucket = TokenBucket(per_minute, clock=lambda: now[0], sleep=fake_sleep)
    grants = []
    for _ in range(calls):
        await bucket.acquire()
        grants.append(now[0])
    return grants


def _most_in_a_window(grants: list[float], seconds: float) -> int:
    most, j = 0, 0
    for i, t in enumerate(grants):
        while grants[j] <= t - seconds:
            j += 1
        most = max(most, i - j + 1)
    return most


async def test_token_bucket_never_exceeds_per_minute_limit() -> None:
    grants = await _grant_times(120, 400)
    assert _most_in_a_window(grants, 60.0) <= 120  # in every 60 s window
    assert grants[-1] > 120  # it did have to wait


async def test_token_bucket_leaves_room_for_late_arrivals() -> None:
    """Calls reach ECI a little after their grant; if those delays differ by up to 3 s, grants
    in any 63 s window can land in one 60 s window of ECI's, so even those must stay within
    the limit (at exactly N grants per 60 s, ECI answered Throttling.User in bench_node)."""
    grants = await _grant_times(1000, 3000)
    assert _most_in_a_window(grants, 63.0) <= 1000


@pytest.mark.parametrize(("env", "missing"), [
    ({}, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
    ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "id"}, "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
    ({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "topsecret"}, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
    ({"ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1:role/x",
      "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "/var/run/token"}, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
])
def test_credential_from_env_names_missing_variable(env: dict[str, str], missing: str) -> None:
    with pytest.raises(CredentialError) as info:
        credential_from_env(env)
    assert missing in str(info.value)
    assert "topsecret" not in str(info.value)


async def test_credential_from_env_access_key() -> None:
    cred = credential_from_env({"ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
                                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sec"})
    model = await cred.get_credential_async()
    assert model.access_key_id == "id"
    assert model.access_key_secret == "sec"


async def test_a_gateway_refusing_a_long_request_is_a_named_permanent_error() -> None:
    # Alibaba's API gateway answers an over-long query string with Tengine's HTML 414 page
    # (seen in aliyun/openapi-core-nodejs-sdk#55); the SDK cannot parse it. A real HTTP server on
    # loopback answers so; the node must not retry it as a transient bad response.
    from aiohttp import web

    from tests.fixtures.http import serving

    page = ("<html><head><title>414 Request-URI Too Large</title></head><body>"
            "<h1>414 Request-URI Too Large</h1><hr/>Powered by Tengine</body></html>")

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=414, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    sleeps: list[float] = []

    async def record_sleep(delay: float) -> None:
        sleeps.append(delay)

    async with serving(app) as port:
        config = EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                                 endpoint=f"127.0.0.1:{port}", protocol="http", max_attempts=3,
                                 backoff_base=0.01)
        with pytest.raises(InvalidInput) as info:
            await EciClient(config, sleep=record_sleep).describe_regions()
    assert info.value.code == "RequestTooLarge" and info.value.http_status == 414
    assert "too large" in str(info.value) and "HTTP 414" in str(info.value)
    assert not sleeps  # permanent: not retried


async def test_a_closed_client_closes_its_connections_and_refuses_calls_without_retrying(
) -> None:
    sleeps: list[float] = []

    async def record_sleep(delay: float) -> None:
        sleeps.append(delay)

    config = EciClientConfig(region_id="cn-hangzhou", credential=AccessKey("AK", "SK"),
                             endpoint="127.0.0.1:9", protocol="http", max_attempts=3,
                             backoff_base=0.01, connect_timeout=1, read_timeout=1)
    threads = set(threading.enumerate())
    client = EciClient(config, sleep=record_sleep)
    with pytest.raises(Retryable) as refused:
        await client.describe_regions()  # port 9 refuses: the pooled session is open now
    assert refused.value.code == "ConnectionError"
    # Sent on the event loop: no thread of the client's (asyncio's own resolver may start one).
    assert all(t.name.startswith("asyncio_") for t in set(threading.enumerate()) - threads)
    session = client._sdk._session
    assert session is not None and not session.closed
    await client.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="DescribeRegions: the ECI client is closed"):
        await client.describe_regions()
    assert len(sleeps) == 2  # the refused call was not retried
