"""Every logger of vk-eci, and the structured (one JSON object per line) formatter.

Callers pass context as ``extra={"pod": "ns/name", ...}``; those keys become JSON fields.
Secrets never reach a log line: nothing here formats request objects, and
:func:`redact` is applied to every message as a last guard.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import sys
import time
from typing import Any

root_logger = logging.getLogger("vk_eci")
node_logger = logging.getLogger("vk_eci.node")
pods_logger = logging.getLogger("vk_eci.pods")
cloud_logger = logging.getLogger("vk_eci.cloud")
caches_logger = logging.getLogger("vk_eci.caches")
kubelet_logger = logging.getLogger("vk_eci.kubelet")
emulator_logger = logging.getLogger("vk_eci.emulator")
controlplane_logger = logging.getLogger("vk_eci.controlplane")
fleet_logger = logging.getLogger("vk_eci.fleet")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Names whose value is a credential (an AccessKeySecret, registry password, bearer token, a
# docker config…). Separators and quotes may be URL-encoded (%3D "=", %3A ":", %22 '"').
_KEY = (r"(?:access_?key_?secret|password|passwd|secret|token|auth|authorization|credentials?"
        r"|\.?dockerconfigjson|\.?dockercfg|private_?key)")
_QUOTE = r"(?:[\"']|%22|%27)"
_SEP = rf"{_QUOTE}?\s*(?:[:=]|%3[ad])\s*"
_SECRET_PATTERNS = [
    # "Authorization: Bearer <token>" / "Basic <base64>": the scheme stays, the rest goes.
    (re.compile(r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1***"),
    # Quoted values, spaces and all: password="a b c", 'secret': 'x y', %22token%22%3A%22…%22.
    (re.compile(rf"(?i)({_KEY}{_SEP})\"[^\"]*\""), r'\1"***"'),
    (re.compile(rf"(?i)({_KEY}{_SEP})'[^']*'"), r"\1'***'"),
    (re.compile(rf"(?i)({_KEY}{_SEP}%2[27])(?:(?!%2[27]).)*%2[27]"), r"\1***%22"),
    # Bare values up to a separator (a URL-encoded value's own %XX escapes stay inside it).
    (re.compile(rf"(?i)({_KEY}{_SEP}{_QUOTE}?)(?:%(?!2[267c]|3b)[0-9a-f]{{2}}|[^\s\"',&;}}%])+"),
     r"\1***"),
]
# Base64 that decodes to a docker config or credentials: an image pull secret's payload.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_DECODED_SECRET = re.compile(rb'(?i)"auths?"|password|"identitytoken"|secret')


def _secret_base64(match: re.Match[str]) -> str:
    blob = match.group(0)
    try:
        decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return blob
    return "***" if _DECODED_SECRET.search(decoded) else blob


def redact(text: str) -> str:
    """Mask values that look like credentials in ``text``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return _BASE64.sub(_secret_base64, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (int, float, bool)) else redact(str(value))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "info", stream: Any = None) -> None:
    """Install the JSON formatter on the ``vk_eci`` logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root_logger.handlers[:] = [handler]
    root_logger.setLevel(level.upper())
    root_logger.propagate = False
