"""Fault injection for tests and demos: error rates, latency, out-of-stock, pause.

Controlled from Python (``emu.faults``) or over HTTP (``/__emulator/faults``). Rates are drawn
from a seeded RNG so a test run is repeatable. ``count`` bounds a fault to the next N matching
requests (then it is removed), which makes "fail twice, then succeed" tests exact.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass
from typing import Any

from vk_eci.emulator.errors import ApiError

# Codes a test may inject, with Alibaba's HTTP status and message for each.
KNOWN: dict[str, tuple[int, str]] = {
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling": (400, "You have made too many requests within a short time; your request is "
                        "denied due to request throttling"),
    # ECI's metadata: the daily vCPU quota of CreateContainerGroup (not a rate: a day's total).
    "Throttling.Vcpu.PerDay": (403, "The maximum number of request for the day has been "
                                    "exceeded."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "InternalError": (500, "The request processing has failed due to some unknown error, "
                           "exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the "
                                "server."),
    "RecommendEmpty.InstanceTypeNoStock": (400, "The specified instance type is out of stock "
                                                "in the zone."),
}


@dataclass
class ErrorRule:
    action: str           # an ECI action, or "*" for all
    code: str
    rate: float = 1.0
    count: int | None = None
    status: int | None = None
    message: str | None = None
    retry_after: float | None = None

    def error(self) -> ApiError:
        status, message = KNOWN.get(self.code, (500, f"Injected fault {self.code}."))
        retry = None if self.retry_after is None else max(1, int(self.retry_after * 1000))
        return ApiError(self.code, self.message or message, self.status or status, retry)


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self.rules: list[ErrorRule] = []
        self.latency: dict[str, float] = {}     # action or "*" -> seconds (real time)
        self.out_of_stock = False
        self.pause_mode: str | None = None       # None, "hang" or "reset"
        self._resumed = asyncio.Event()
        self._resumed.set()

    # ---- configuration -------------------------------------------------------------
    def inject(self, action: str, code: str, rate: float = 1.0, count: int | None = None,
               *, status: int | None = None, message: str | None = None,
               retry_after: float | None = None) -> ErrorRule:
        """Answer ``rate`` of ``action`` requests (``"*"``: every action) with ``code``;
        ``retry_after`` (seconds) adds the ``x-acs-retry-after`` header."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate for {action}/{code} must be within 0..1, got {rate}")
        rule = ErrorRule(action, code, rate, count, status, message, retry_after)
        self.rules.append(rule)
        return rule

    def throttle(self, action: str = "*", rate: float = 1.0, count: int | None = None) -> None:
        self.inject(action, "Throttling.User", rate, count)

    def server_error(self, action: str = "*", rate: float = 1.0, count: int | None = None,
                     code: str = "InternalError") -> None:
        self.inject(action, code, rate, count)

    def set_latency(self, seconds: float, action: str = "*") -> None:
        if seconds < 0:
            raise ValueError(f"latency for {action} must be >= 0, got {seconds}")
        self.latency[action] = seconds

    def set_out_of_stock(self, on: bool = True) -> None:
        self.out_of_stock = on

    def pause(self, mode: str = "hang") -> None:
        """Stop answering: ``hang`` holds requests until resume (callers time out), ``reset``
        drops connections at once (callers see a connection error)."""
        if mode not in ("hang", "reset"):
            raise ValueError(f"pause mode must be 'hang' or 'reset', got {mode!r}")
        self.pause_mode = mode
        self._resumed.clear()

    def resume(self) -> None:
        self.pause_mode = None
        self._resumed.set()

    @property
    def paused(self) -> bool:
        return self.pause_mode is not None

    def clear(self) -> None:
        self.rules.clear()
        self.latency.clear()
        self.out_of_stock = False
        self.resume()

    # ---- use by the server ---------------------------------------------------------
    async def wait_resumed(self) -> None:
        await self._resumed.wait()

    def delay_for(self, action: str) -> float:
        return self.latency.get(action, self.latency.get("*", 0.0))

    def error_for(self, action: str) -> ApiError | None:
        for rule in list(self.rules):
            if rule.action not in ("*", action):
                continue
            if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            return rule.error()
        return None

    def snapshot(self) -> dict[str, Any]:
        return {"rules": [asdict(r) for r in self.rules], "latency": dict(self.latency),
                "out_of_stock": self.out_of_stock, "paused": self.pause_mode}
