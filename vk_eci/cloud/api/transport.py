"""``PooledSdkClient``: the ECI SDK's client, sending over one aiohttp session kept for its life.

The SDK's async calls (``<action>_with_options_async``) turn its request models into a query and
read the answer back into its response models; their last step, :meth:`call_api_async`, sends.
The SDK's own version of that step opens a new aiohttp session, connection and (over HTTPS) SSL
context with its CA bundle for every call, and its sync calls need a thread each over
``requests``: most of the node's CPU per pod. Here that one step is overridden: the request is
built and signed as the SDK builds and signs it (ACS3, with the SDK's public helpers
``Utils.get_authorization``, ``Utils.hash``, ``Utils.get_timestamp``/``get_nonce``) and sent over
a pooled session on the event loop, no threads.

Answers come back as the SDK returns them (``{"body", "headers", "statusCode"}``), and failures
are raised as the SDK raises them (``ClientException``, ``ServerException``,
``ThrottlingException`` for an error answer; ``UnretryableException`` around a body that is not
JSON), so :func:`vk_eci.cloud.api.errors.classify` reads both alike. Transport failures leave as
aiohttp's and asyncio's own exceptions, which ``classify`` maps to ``ConnectionError`` and
``Timeout``. Requests this does not build (the older ``v2`` and ``v4`` signatures, bodies,
anonymous or bearer-token calls, other styles) go to the SDK's own path unchanged.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import certifi
from alibabacloud_eci20180808.client import Client as SdkClient
from alibabacloud_tea_openapi import exceptions as sdk_errors
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_util import models as util_models
from darabonba.exceptions import UnretryableException
from darabonba.policy.retry import RetryPolicyContext
from darabonba.request import DaraRequest
from darabonba.utils.stream import Stream
from darabonba.utils.xml import XML
from yarl import URL

DEFAULT_ALGORITHM = "ACS3-HMAC-SHA256"  # the SDK's default when the config names none
_OWN_PATH_ALGORITHMS = frozenset({"v2"})  # signed by the SDK's older RPC path, not ACS3


class Runtime(util_models.RuntimeOptions):  # type: ignore[misc]  # (no type hints)
    """The SDK's per-call options, and ``on_answer``: called with each answer's parsed JSON body
    (a dict, which it may change) before the SDK reads it into its models, on this transport's
    path and the SDK's own alike (:mod:`vk_eci.cloud.api.reuse`)."""

    on_answer: Callable[[dict[str, Any]], None] | None = None


class PooledSdkClient(SdkClient):  # type: ignore[misc]  # the SDK ships no type hints
    """The SDK client with :meth:`call_api_async` sending over a session of ours; see the
    module docstring. ``pool_size`` bounds the connections kept open to the endpoint."""

    def __init__(self, config: Any, *, pool_size: int, connect_timeout: float,
                 read_timeout: float) -> None:
        super().__init__(config)
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._agent = Utils.get_user_agent(self._user_agent)

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # One SSL context for the client's life, with the CA bundle the SDK trusts.
            context: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=certifi.where())
                if (self._protocol or "").lower() == "https" else False)
            connector = aiohttp.TCPConnector(limit=self._pool_size,
                                             limit_per_host=self._pool_size, ssl=context)
            self._proxy = _env_proxy(self._protocol or "https", self._endpoint)
            # Not aiohttp's trust_env: it reads the environment and ~/.netrc again, in a
            # thread, for every request (a tenth of the node's CPU per pod).
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        """Close the pooled session (a later call opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _builds(self, params: Any, request: Any) -> bool:
        return (self._signature_version != "v4"
                and (self._signature_algorithm or DEFAULT_ALGORITHM) not in _OWN_PATH_ALGORITHMS
                and params.style == "RPC" and params.auth_type != "Anonymous"
                and params.body_type == "json" and request.body is None
                and request.stream is None)

    async def call_api_async(self, params: Any, request: Any, runtime: Any) -> dict[str, Any]:
        answer = await self._send(params, request, runtime)
        on_answer = getattr(runtime, "on_answer", None)
        if on_answer is not None and isinstance(answer.get("body"), dict):
            on_answer(answer["body"])
        return answer

    async def _send(self, params: Any, request: Any, runtime: Any) -> dict[str, Any]:
        if not self._builds(params, request):
            return await super().call_api_async(params, request, runtime)  # type: ignore[no-any-return]
        credential = await self._credential.get_credential_async()
        if credential.type in ("bearer", "id_token"):
            return await super().call_api_async(params, request, runtime)  # type: ignore[no-any-return]
        algorithm = self._signature_algorithm or DEFAULT_ALGORITHM
        query = {key: str(value) for key, value in (request.query or {}).items()
                 if value is not None}
        headers: dict[str, str] = {
            "host": self._endpoint,
            "x-acs-version": params.version,
            "x-acs-action": params.action,
            "user-agent": self._agent,
            "x-acs-date": Utils.get_timestamp(),
            "x-acs-signature-nonce": Utils.get_nonce(),
            "accept": "application/json",
        }
        headers.update(request.headers or {})
        headers.update(self.get_rpc_headers() or {})
        payload = Utils.hash(b"", algorithm).hex()  # no body: every ECI action is RPC-style
        headers["x-acs-content-sha256"] = payload
        if credential.provider_name:  # which provider gave the key, as the SDK tells ECI
            headers["x-acs-credentials-provider"] = credential.provider_name
        if credential.security_token:
            headers["x-acs-accesskey-id"] = credential.access_key_id
            headers["x-acs-security-token"] = credential.security_token
        signed = DaraRequest()
        signed.method, signed.pathname = params.method, params.pathname
        signed.query, signed.headers = query, headers
        headers["Authorization"] = Utils.get_authorization(
            signed, algorithm, payload, credential.access_key_id, credential.access_key_secret)
        protocol = (self._protocol or params.protocol or "https").lower()
        # Encoded here as the SDK encodes it (urlencode), and not again by aiohttp: the
        # signature covers the query the server decodes.
        text = f"{protocol}://{self._endpoint}{params.pathname}"
        if query:
            text += "?" + urlencode(query)
        async with self._pool().request(params.method, URL(text, encoded=True),
                                        headers=headers, proxy=self._proxy) as response:
            raw = await response.read()
            status = response.status
            answer_headers = {key.lower(): value for key, value in response.headers.items()}
        try:
            if 400 <= status < 600:
                raise _error_of(status, answer_headers, raw, self)
            body = Stream.read_as_json(raw)
        except (sdk_errors.AlibabaCloudException, UnretryableException):
            raise
        except Exception as exc:  # a body that is not JSON: wrapped as the SDK wraps it
            raise UnretryableException(RetryPolicyContext(retries_attempted=1,
                                                          exception=exc)) from exc
        return {"body": body, "headers": answer_headers, "statusCode": status}


def _env_proxy(protocol: str, endpoint: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY`` names for the endpoint unless ``NO_PROXY`` excludes it (as
    the SDK reads them), read once per session."""
    proxy = urllib.request.getproxies_environment().get(protocol.lower())
    host = endpoint.rsplit(":", 1)[0] if ":" in endpoint else endpoint
    if proxy and urllib.request.proxy_bypass(host):
        return None
    return proxy or None


def _error_of(status: int, headers: dict[str, str], raw: bytes,
              client: PooledSdkClient) -> Exception:
    """The SDK's exception for an error answer, with the fields the SDK fills."""
    if headers.get("content-type") == "text/xml;charset=utf-8":
        err = XML.parse_xml(raw.decode("utf-8"), None).get("Error") or {}
    else:
        err = Stream.read_as_json(raw)
    request_id = err.get("RequestId") or err.get("requestId")
    code = err.get("Code") or err.get("code")
    fields: dict[str, Any] = {
        "status_code": status,
        "code": f"{code}",
        "message": f"code: {status}, {err.get('Message') or err.get('message')} "
                   f"request id: {request_id}",
        "detail": f"{err.get('Detail') or err.get('detail')}",
        "description": f"{err.get('Description') or err.get('description')}",
        "data": err,
        "request_id": f"{request_id}",
    }
    retry_after = Utils.get_throttling_time_left(headers)
    error: Exception
    if retry_after is not None:
        error = sdk_errors.ThrottlingException(retry_after=retry_after, **fields)
    elif status < 500:
        error = sdk_errors.ClientException(
            access_denied_detail=client.get_access_denied_detail(err), **fields)
    else:
        error = sdk_errors.ServerException(**fields)
    return error
