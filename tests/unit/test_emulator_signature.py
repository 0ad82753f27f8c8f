"""The emulator's signature checks agree with the official SDK's own signing code."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from alibabacloud_tea_openapi.utils import Utils

from vk_eci.emulator.errors import ApiError
from vk_eci.emulator.signature import NonceCache, Verifier, percent

NOW = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DATE = "2024-01-01T00:00:00Z"


def _acs3(query: dict[str, str], *, key: str = "AK", secret: str = "SK", nonce: str = "n1",
          date: str = DATE) -> dict[str, str]:
    headers = {"host": "127.0.0.1:1234", "x-acs-action": "DescribeRegions",
               "x-acs-version": "2018-08-08", "x-acs-date": date,
               "x-acs-signature-nonce": nonce,
               "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
               "accept": "application/json", "user-agent": "test"}
    req = SimpleNamespace(pathname="/", query=query, headers=headers, method="POST")
    headers["authorization"] = Utils.get_authorization(
        req, "ACS3-HMAC-SHA256", hashlib.sha256(b"").hexdigest(), key, secret)
    return headers


def _rpc(query: dict[str, str], *, secret: str = "SK", nonce: str = "n1",
         ts: str = DATE) -> dict[str, str]:
    q = {"Action": "DescribeRegions", "Format": "json", "Version": "2018-08-08",
         "Timestamp": ts, "SignatureNonce": nonce, "SignatureMethod": "HMAC-SHA1",
         "SignatureVersion": "1.0", "AccessKeyId": "AK", **query}
    q["Signature"] = Utils.get_rpcsignature(q, "POST", secret)
    return q


def verifier() -> Verifier:
    return Verifier({"AK": "SK"}, wall=lambda: NOW)


QUERY = {"RegionId": "cn-hangzhou", "Container.1.Command.3": "echo a b; exit 3",
         "Tag.1.Value": "ns/pod ~ü"}


def test_acs3_signed_by_the_sdk_is_accepted() -> None:
    verifier().verify("POST", "/", list(QUERY.items()), _acs3(QUERY), b"")


def test_rpc_v2_signed_by_the_sdk_is_accepted() -> None:
    q = _rpc(QUERY)
    verifier().verify("POST", "/", list(q.items()), {}, b"")


@pytest.mark.parametrize("form", ["acs3", "rpc"])
def test_wrong_secret_is_signature_does_not_match(form: str) -> None:
    with pytest.raises(ApiError) as e:
        if form == "acs3":
            verifier().verify("POST", "/", list(QUERY.items()), _acs3(QUERY, secret="bad"), b"")
        else:
            q = _rpc(QUERY, secret="bad")
            verifier().verify("POST", "/", list(q.items()), {}, b"")
    assert e.value.code == "SignatureDoesNotMatch"
    assert e.value.status == 400


def test_tampered_parameter_is_refused() -> None:
    headers = _acs3(QUERY)
    tampered = {**QUERY, "RegionId": "cn-beijing"}
    with pytest.raises(ApiError) as e:
        verifier().verify("POST", "/", list(tampered.items()), headers, b"")
    assert e.value.code == "SignatureDoesNotMatch"


def test_unknown_key() -> None:
    with pytest.raises(ApiError) as e:
        verifier().verify("POST", "/", list(QUERY.items()), _acs3(QUERY, key="nobody"), b"")
    assert (e.value.code, e.value.status) == ("InvalidAccessKeyId.NotFound", 404)


@pytest.mark.parametrize("form", ["acs3", "rpc"])
def test_stale_timestamp(form: str) -> None:
    old = "2023-12-31T23:40:00Z"  # 20 minutes before NOW: beyond the 15 minute window
    with pytest.raises(ApiError) as e:
        if form == "acs3":
            verifier().verify("POST", "/", list(QUERY.items()), _acs3(QUERY, date=old), b"")
        else:
            q = _rpc(QUERY, ts=old)
            verifier().verify("POST", "/", list(q.items()), {}, b"")
    assert e.value.code == "InvalidTimeStamp.Expired"


def test_timestamp_within_window_is_accepted() -> None:
    verifier().verify("POST", "/", list(QUERY.items()), _acs3(QUERY, date="2023-12-31T23:50:00Z"),
                      b"")


@pytest.mark.parametrize("form", ["acs3", "rpc"])
def test_reused_nonce(form: str) -> None:
    v = verifier()
    if form == "acs3":
        v.verify("POST", "/", list(QUERY.items()), _acs3(QUERY, nonce="same"), b"")
        with pytest.raises(ApiError) as e:
            v.verify("POST", "/", list(QUERY.items()), _acs3(QUERY, nonce="same"), b"")
    else:
        q = _rpc(QUERY, nonce="same")
        v.verify("POST", "/", list(q.items()), {}, b"")
        with pytest.raises(ApiError) as e:
            v.verify("POST", "/", list(q.items()), {}, b"")
    assert e.value.code == "SignatureNonceUsed"


def test_unsigned_request_is_refused() -> None:
    with pytest.raises(ApiError) as e:
        verifier().verify("POST", "/", list(QUERY.items()), {}, b"")
    assert e.value.code == "MissingSignature"


def test_nonce_cache_forgets_after_ttl() -> None:
    now = [0.0]
    cache = NonceCache(ttl=10, wall=lambda: now[0])
    assert cache.check_and_add("a")
    assert not cache.check_and_add("a")
    now[0] = 11.0
    assert cache.check_and_add("a")


def test_percent_is_rfc3986() -> None:
    assert percent("a b*~/-_.") == "a%20b%2A~%2F-_."
