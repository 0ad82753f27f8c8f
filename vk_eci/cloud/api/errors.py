"""Our error classes for everything the cloud side can fail with, and the one SDK mapping.

Callers decide by class, never by SDK type: :class:`Throttled` and :class:`Retryable` are worth
another try (later), :class:`Permanent` is not (:class:`NotFound` and :class:`InvalidInput` are
permanent too). Only :func:`classify` knows the Tea/Darabonba exception types of the SDK; it is
used as ``raise classify(e) from e`` so that the SDK exception stays chained for debugging.

Messages never carry credentials: we build them from the ECI code and message (which never
contain our secret) and run them through :func:`vk_eci.log.redact` as a last guard.
"""

from __future__ import annotations

import asyncio
import re

from alibabacloud_tea_openapi.exceptions import (
    AlibabaCloudException,
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.exceptions import ResponseException
from Tea.exceptions import TeaException

from vk_eci.log import redact

THROTTLING_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api",
                              "Throttling.System", "ServiceUnavailable.Throttling"})
# Documented by ECI's API metadata for CreateContainerGroup (HTTP 403).
QUOTA_CODES = frozenset({"Throttling.Vcpu.PerDay"})
NOT_FOUND_CODES = frozenset({
    "InvalidContainerGroup.NotFound", "ContainerGroup.NotFound", "InvalidImageCache.NotFound",
    "ImageCache.NotFound", "InvalidImageSnapshotId.NotFound", "InvalidParameter.NotFound",
    "ResourceNotFound", "NotFound",
})
# 4xx codes that Alibaba documents as transient (a dependency being busy, an idempotent
# operation still in progress): retried like 5xx.
RETRYABLE_CODES = frozenset({
    "ServiceUnavailable", "InternalError", "IncorrectStatus.Processing", "OperationConflict",
    "LastTokenProcessing", "ServiceBusy", "RequestTimeout",
})


# The HTML status line of a gateway refusing a request for its size (nginx/Tengine wording).
_GATEWAY_TOO_LARGE = re.compile(
    r"\b(41[34]) (?:Request[- ]URI Too (?:Large|Long)|Request Entity Too Large|"
    r"URI Too Long|Payload Too Large)")


class EciError(Exception):
    """An ECI call (or our own check before one) failed.

    ``code`` is the ECI error code (``Throttling.User``, ``InvalidParameter``…) or one of ours
    (``Timeout``, ``ConnectionError``, ``InvalidPod``); ``http_status`` is 0 when no HTTP answer
    came back; ``retry_after`` is the server's hint in seconds, when it gave one.
    """

    def __init__(self, code: str, message: str, request_id: str = "", http_status: int = 0,
                 retry_after: float | None = None) -> None:
        self.code = code
        self.message = redact(message)
        self.request_id = request_id
        self.http_status = http_status
        self.retry_after = retry_after
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class Throttled(EciError):
    """ECI (or our own client-side bucket) refused the call for its rate: try again later."""


class QuotaExceeded(EciError):
    """A quota over a long period (ECI's ``Throttling.Vcpu.PerDay``, HTTP 403: the day's vCPU
    total): not retried within the call, since seconds of backoff cannot help; the pod's work
    queue tries again with its own, longer backoff."""


class Retryable(EciError):
    """A transient failure: 5xx, timeout, connection refused or reset."""


class MissingDependency(Retryable):
    """A Secret/ConfigMap (or key) the pod needs does not exist yet: retried like the kubelet
    retries ``CreateContainerConfigError``, since the object is often created just after."""

    def __init__(self, thing: str, reason: str, *, event: str = "MissingDependency") -> None:
        self.thing = thing
        self.reason = reason
        self.event = event  # the virtual-kubelet's event reason, e.g. MandatorySecretNotFound
        what = "could not be read" if event.startswith("FailedToRead") else "not found"
        super().__init__("MissingDependency", f"{thing} {what}: {reason}")


class OutOfStock(Retryable):
    """ECI has no stock for the spec in the zones asked for (``RecommendEmpty.*``, ``*NoStock``):
    stock comes back, so it is retried unless the pod asked to fail fast
    (``k8s.aliyun.com/eci-fail-strategy``)."""


class Permanent(EciError):
    """Trying again with the same input will fail the same way."""


class NotFound(Permanent):
    """The container group or image cache does not exist (any more)."""


class GroupForgotten(NotFound):
    """An ended pod's container group that ECI no longer keeps (ECI keeps an ended group
    1 hour, then only the last 100 of the region): the pod's final status stays, its logs and
    files are gone."""


class InvalidInput(Permanent):
    """The input cannot be sent to ECI: ``thing`` names what (a volume, a secret, the pod's size)
    and ``reason`` says why. Raised by our own checks before any call, or for ECI's
    ``InvalidParameter``/``MissingParameter`` answers."""

    def __init__(self, thing: str, reason: str, *, code: str = "InvalidInput",
                 request_id: str = "", http_status: int = 0, event: str | None = None) -> None:
        self.thing = thing
        self.reason = reason
        self.event = event  # a specific event reason to record, e.g. UnsupportedPersistentVolume
        super().__init__(code, f"{thing}: {reason}", request_id, http_status)


def _status_of(exc: BaseException) -> int:
    status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
    if status is None:
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            status = data.get("statusCode")
    try:
        return int(status) if status is not None else 0
    except (TypeError, ValueError):
        return 0


def _ecimessage(exc: BaseException) -> str:
    # The SDK's own message is "code: 400, <Message> request id: <id>"; prefer the raw ECI
    # message from the decoded body so that ours reads cleanly.
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        raw = data.get("Message") or data.get("message")
        if raw:
            return str(raw)
    return str(getattr(exc, "message", None) or exc)


def _retry_after_seconds(exc: BaseException) -> float | None:
    # Darabonba reads ``x-acs-retry-after`` as milliseconds (it sleeps retry_after/1000).
    value = getattr(exc, "retry_after", None)
    if value is None:
        return None
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return None
    return ms / 1000.0 if ms > 0 else None


def _is_connection_problem(inner: BaseException | None) -> bool:
    return isinstance(inner, (OSError, asyncio.TimeoutError, TimeoutError)) or (
        inner is not None and type(inner).__module__.startswith("aiohttp"))


def classify(exc: BaseException) -> EciError:
    """Map any exception from an SDK call to one of ours (to ``raise … from exc``)."""
    if isinstance(exc, EciError):
        return exc
    if isinstance(exc, (AlibabaCloudException, ResponseException)):
        code = str(getattr(exc, "code", None) or "Unknown")
        status = _status_of(exc)
        request_id = str(getattr(exc, "request_id", None) or "")
        if request_id == "None":
            request_id = ""
        message = _ecimessage(exc)
        retry_after = _retry_after_seconds(exc)
        if code in QUOTA_CODES:
            return QuotaExceeded(code, message, request_id, status, retry_after)
        if code in THROTTLING_CODES or code.startswith("Throttling") or isinstance(
                exc, ThrottlingException) or status == 429:
            return Throttled(code, message, request_id, status, retry_after)
        if code.startswith("RecommendEmpty") or "NoStock" in code:
            return OutOfStock(code, message, request_id, status, retry_after)
        if isinstance(exc, ServerException) or status >= 500 or code in RETRYABLE_CODES:
            return Retryable(code, message, request_id, status, retry_after)
        if code in NOT_FOUND_CODES or code.endswith(".NotFound") or status == 404:
            return NotFound(code, message, request_id, status)
        if code.startswith(("InvalidParameter", "MissingParameter", "InvalidInput")):
            return InvalidInput("request", message, code=code, request_id=request_id,
                                http_status=status)
        if isinstance(exc, ClientException) or 400 <= status < 500:
            return Permanent(code, message, request_id, status)
        return Retryable(code, message, request_id, status, retry_after)
    if isinstance(exc, TeaException):
        # UnretryableException wraps transport failures (refused, reset, timeout) and bodies
        # that were not JSON: all transient from our point of view.
        inner = getattr(exc, "inner_exception", None)
        if isinstance(inner, (asyncio.TimeoutError, TimeoutError)):
            return Retryable("Timeout", f"no answer in time ({type(inner).__name__})")
        if _is_connection_problem(inner):
            return Retryable("ConnectionError", f"{type(inner).__name__}: {inner}")
        if inner is not None and type(inner).__name__ == "RetryError":
            # Darabonba wraps transport failures in RetryError({"message": "<aiohttp text>"}).
            text = str(getattr(inner, "message", None) or inner)
            code = "Timeout" if "timeout" in text.lower() else "ConnectionError"
            return Retryable(code, text)
        if inner is not None:
            text = f"{type(inner).__name__}: {inner}"
            if refusal := _GATEWAY_TOO_LARGE.search(text):
                # Alibaba's API gateway (Tengine) answers an over-long request with an HTML
                # 413/414 page the SDK cannot parse: no retry makes the request shorter.
                return InvalidInput("request", f"ECI's API gateway refused it as too large "
                                               f"(HTTP {refusal.group(1)})",
                                    code="RequestTooLarge", http_status=int(refusal.group(1)))
            return Retryable("BadResponse", text)
        code = str(getattr(exc, "code", None) or "SdkError")
        return Retryable(code, str(getattr(exc, "message", None) or exc))
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Retryable("Timeout", "no answer in time")
    if _is_connection_problem(exc):
        return Retryable("ConnectionError", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):
        # The SDK raises plain ValueError/KeyError when a 200 body is not the JSON it expects.
        return Retryable("BadResponse", f"{type(exc).__name__}: {exc}")
    return Permanent("Unexpected", f"{type(exc).__name__}: {exc}")
