"""Errors answered in Alibaba's format: ``{"RequestId", "Code", "Message", "HostId", "Recommend"}``.

Codes follow the ECI/POP documentation. HTTP status matters to the SDK (4xx raises
``ClientException``, 5xx ``ServerException``); throttling is HTTP 400 as Alibaba answers it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ApiError(Exception):
    code: str
    message: str
    status: int = 400
    retry_after_ms: int | None = None   # sent as x-acs-retry-after (SDK: ThrottlingException)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def missing(name: str) -> ApiError:
    return ApiError("MissingParameter", f"The input parameter \"{name}\" that is mandatory "
                    "for processing this request is not supplied.")


def invalid(name: str, reason: str, code: str = "InvalidParameter") -> ApiError:
    """A bad value: the message names the field and why it is refused."""
    return ApiError(code, f"The specified parameter \"{name}\" is not valid: {reason}")


def group_not_found(group_id: str) -> ApiError:
    return ApiError("InvalidContainerGroup.NotFound",
                    f"The specified container group {group_id} does not exist.", 404)


def cache_not_found(cache_id: str) -> ApiError:
    return ApiError("InvalidImageCache.NotFound",
                    f"The specified image cache {cache_id} does not exist.", 404)


def throttled(action: str, code: str = "Throttling.User") -> ApiError:
    """The answer over a rate limit: the API gateway's ``Throttling.User``, or the
    ``Throttling`` that ECI's own metadata lists (both HTTP 400; the model's ``throttle_code``)."""
    if code == "Throttling":
        return ApiError(code, "You have made too many requests within a short time; your "
                              f"request is denied due to request throttling ({action}).")
    return ApiError(code, f"Request was denied due to user flow control ({action}).")


def internal() -> ApiError:
    return ApiError("InternalError", "The request processing has failed due to some unknown "
                    "error, exception or failure.", 500)


def unavailable() -> ApiError:
    return ApiError("ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.", 503)
