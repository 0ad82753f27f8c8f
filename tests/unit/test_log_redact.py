"""vk_eci.log.redact: credentials in any of the shapes a library or an API error may echo."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

from vk_eci.log import JsonFormatter, redact

DOCKER = base64.b64encode(json.dumps({"auths": {"registry.example.com": {
    "username": "bob", "password": "hunter2hunter2",
    "auth": base64.b64encode(b"bob:hunter2hunter2").decode()}}}).encode()).decode()


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "eyJhbGci"),
    ("headers={'Authorization': 'Bearer abc.def-ghi'}", "abc.def-ghi"),
    ("authorization: Basic Ym9iOmh1bnRlcjI=", "Ym9iOmh1bnRlcjI"),
    ('password="correct horse battery staple"', "horse battery"),
    ("{'AccessKeySecret': 'my very secret'}", "very secret"),
    ('{"password": "two words"}', "two words"),
    (f'{{".dockerconfigjson": "{DOCKER}"}}', DOCKER[:40]),
    (f"pull secret data {DOCKER} rejected", DOCKER[:40]),
    ("AccessKeySecret%3Dabc%2Bdef%2F123&Action=Create", "abc%2Bdef"),
    ("Password%22%3A%22s3cr3t%20with%20space%22%2C", "s3cr3t"),
    ("url?token%3Dsecretvalue%26next=1", "secretvalue"),
    ("ALIBABA_CLOUD_ACCESS_KEY_SECRET=plainsecret", "plainsecret"),
])
def test_redact_masks_the_credential(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out, out
    assert "***" in out


@pytest.mark.parametrize("text", [
    "pod ns/web created as eci-123 in 0.52 s",
    "image registry.example.com/team/app:v1.2.3 not found",
    "authorisation of GET /stats failed",
    "container group eci-bp1abcdefghijklmnop is Running",  # an id is not base64 of a secret
])
def test_redact_keeps_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_log_lines_are_redacted_with_their_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("vk_eci.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("pull failed: %s", 'registry said password="a b c"',
                       extra={"request": "Authorization: Bearer tok.en"})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert "a b c" not in entry["msg"] and "tok.en" not in entry["request"]
