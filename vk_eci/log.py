"""Every logger of vk-eci, and the structured (one JSON object per line) formatter.

Callers pass context as ``extra={"pod": "ns/name", ...}``; those keys become JSON fields.
Secrets never reach a log line: nothing here formats request objects, and
:func:`redact` is applied to every message as a last guard.
"""

from __future__ import annotations

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

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_PATTERNS = [
    # AccessKeySecret / Password / auth values that might be echoed by a library message.
    re.compile(r"(?i)((?:access_?key_?secret|password|passwd|secret|token|auth)[\"']?\s*[:=]\s*[\"']?)"
               r"([^\s\"',&}]+)"),
]


def redact(text: str) -> str:
    """Mask values that look like credentials in ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


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
