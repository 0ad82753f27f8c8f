"""The event loop's lag, as Prometheus sees it: how late a short sleep wakes up.

Everything of the node shares one event loop, so a handler that holds it (a decompression bomb,
a quadratic parse) delays the Lease renewal, pod status and every other caller. The probe makes
such stalls visible in production (``vk_eci_event_loop_lag_seconds``, and the worst one since
start) and is what the attack tests of docs/SECURITY.md measure against.
"""

from __future__ import annotations

import asyncio

from vk_eci.metrics import Metrics

INTERVAL = 0.05  # seconds between wake-ups: a stall of 100 ms always spans one


async def probe(metrics: Metrics, interval: float = INTERVAL) -> None:
    """Until cancelled: observe each wake-up's delay past ``interval``."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - start - interval)
        metrics.event_loop_lag.observe(lag)
        if lag > worst:
            worst = lag
            metrics.event_loop_lag_max.set(worst)
