"""Request signatures as Alibaba Cloud checks them: ACS3-HMAC-SHA256 and the v2 RPC form.

Freshness and nonces are judged on real wall time (the SDK signs with the real time), not on
the emulated clock, so a ManualClock far from now does not break authentication.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from urllib.parse import quote

from vk_eci.emulator.errors import ApiError

MAX_SKEW_S = 15 * 60
NONCE_TTL_S = 15 * 60
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


_BARE = re.compile(r"[A-Za-z0-9\-_.~]*\Z")


@lru_cache(maxsize=65536)
def percent(value: str) -> str:
    """RFC 3986 encoding: only ``A-Z a-z 0-9 - _ . ~`` stay bare (memoised: values repeat)."""
    return value if _BARE.match(value) else quote(value, safe="~")


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{percent(k)}={percent(v)}" for k, v in sorted(pairs))


def acs3_signature(secret: str, method: str, path: str, pairs: Sequence[tuple[str, str]],
                   headers: Mapping[str, str], signed_headers: Sequence[str],
                   body_sha256: str) -> str:
    canon_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed_headers)
    canonical = "\n".join([method, path or "/", canonical_query(pairs), canon_headers,
                           ";".join(signed_headers), body_sha256])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def rpc_signature(secret: str, method: str, pairs: Sequence[tuple[str, str]]) -> str:
    canon = canonical_query([(k, v) for k, v in pairs if k != "Signature"])
    to_sign = f"{method}&%2F&{percent(canon)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@lru_cache(maxsize=4096)
def parse_iso(value: str) -> float | None:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    return None


class NonceCache:
    """Nonces seen within the TTL; a reuse is refused (replay protection)."""

    def __init__(self, ttl: float = NONCE_TTL_S, wall: Callable[[], float] = time.time) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._ttl = ttl
        self._wall = wall

    def check_and_add(self, nonce: str) -> bool:
        now = self._wall()
        while self._seen:
            oldest, when = next(iter(self._seen.items()))
            if now - when <= self._ttl:
                break
            del self._seen[oldest]
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


def _err_key() -> ApiError:
    return ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)


def _err_sig() -> ApiError:
    return ApiError("SignatureDoesNotMatch",
                    "Specified signature is not matched with our calculation.", 400)


def _err_nonce() -> ApiError:
    return ApiError("SignatureNonceUsed", "Specified signature nonce was used already.", 400)


def _check_time(raw: str | None, header: str, wall: float) -> None:
    if not raw:
        raise ApiError("MissingParameter", f"The input parameter \"{header}\" that is mandatory "
                       "for processing this request is not supplied.", 400)
    when = parse_iso(raw)
    if when is None:
        raise ApiError("InvalidTimeStamp.Format",
                       f"Specified time stamp or date value {raw!r} is not well formatted.", 400)
    if abs(wall - when) > MAX_SKEW_S:
        raise ApiError("InvalidTimeStamp.Expired",
                       f"Specified time stamp or date value is expired: {raw} is more than "
                       f"{MAX_SKEW_S // 60} minutes from the server time.", 400)


class Verifier:
    """Checks one request against the known keys; raises :class:`ApiError` as Alibaba does."""

    def __init__(self, keys: Mapping[str, str], wall: Callable[[], float] = time.time) -> None:
        self._keys = dict(keys)
        self._wall = wall
        self.nonces = NonceCache(wall=wall)

    def verify(self, method: str, path: str, pairs: Sequence[tuple[str, str]],
               headers: Mapping[str, str], body: bytes) -> None:
        """``headers`` must have lower-case names."""
        auth = headers.get("authorization")
        if auth is not None:
            self._verify_acs3(method, path, pairs, headers, body, auth)
        else:
            self._verify_rpc(method, pairs)

    def _verify_acs3(self, method: str, path: str, pairs: Sequence[tuple[str, str]],
                     headers: Mapping[str, str], body: bytes, auth: str) -> None:
        algo, _, rest = auth.partition(" ")
        if algo != "ACS3-HMAC-SHA256":
            raise ApiError("InvalidSignatureMethod",
                           f"Specified signature method {algo!r} is not supported.", 400)
        fields: dict[str, str] = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            fields[name] = value
        key_id = fields.get("Credential", "")
        signed = [h for h in fields.get("SignedHeaders", "").split(";") if h]
        given = fields.get("Signature", "")
        if not key_id or not signed or not given:
            raise ApiError("IncompleteSignature", "The Authorization header lacks Credential, "
                           "SignedHeaders or Signature.", 400)
        secret = self._keys.get(key_id)
        if secret is None:
            raise _err_key()
        for required in ("host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
            if required not in signed and required in headers:
                raise ApiError("IncompleteSignature",
                               f"The header {required!r} must be signed.", 400)
        body_sha = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256", body_sha) != body_sha:
            raise ApiError("InvalidContentSha256",
                           "x-acs-content-sha256 does not match the request body.", 400)
        expected = acs3_signature(secret, method, path, pairs, headers, signed, body_sha)
        if not hmac.compare_digest(expected, given):
            raise _err_sig()
        _check_time(headers.get("x-acs-date"), "x-acs-date", self._wall())
        nonce = headers.get("x-acs-signature-nonce")
        if not nonce:
            raise ApiError("MissingParameter", "The input parameter \"x-acs-signature-nonce\" "
                           "that is mandatory for processing this request is not supplied.", 400)
        if not self.nonces.check_and_add(nonce):
            raise _err_nonce()

    def _verify_rpc(self, method: str, pairs: Sequence[tuple[str, str]]) -> None:
        query = dict(pairs)
        given = query.get("Signature")
        key_id = query.get("AccessKeyId")
        if not given or not key_id:
            raise ApiError("MissingSignature" if not given else "MissingAccessKeyId",
                           "The request is not signed: neither an Authorization header nor "
                           "the Signature and AccessKeyId parameters are present.", 400)
        secret = self._keys.get(key_id)
        if secret is None:
            raise _err_key()
        if query.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
            raise ApiError("InvalidSignatureMethod", "Specified signature method "
                           f"{query.get('SignatureMethod')!r} is not supported.", 400)
        expected = rpc_signature(secret, method, pairs)
        if not hmac.compare_digest(expected, given):
            raise _err_sig()
        _check_time(query.get("Timestamp"), "Timestamp", self._wall())
        nonce = query.get("SignatureNonce")
        if not nonce:
            raise ApiError("MissingParameter", "The input parameter \"SignatureNonce\" that is "
                           "mandatory for processing this request is not supplied.", 400)
        if not self.nonces.check_and_add(nonce):
            raise _err_nonce()
