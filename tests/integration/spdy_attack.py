"""Tools of the SPDY exec attack tests (test_kubelet_spdy_attacks.py): a raw SPDY/3.1 exec
caller that goes through the API server (before 1.36 it relays the caller's SPDY bytes to the
kubelet unchanged), the bombs it can send, and what they cost the node: peak RSS growth (the
kernel's high-water mark, reset before each bomb) and the worst event-loop stall, both as the
node's own probe reports it (``vk_eci_event_loop_lag_seconds``) and as a ping of its /healthz
from outside sees it (which also works against a node without the probe)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import threading
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from vk_eci.kubelet.spdy_dictionary import DICTIONARY
from vk_eci.kubelet.spdy_frames import SYN_STREAM, control

MiB = 1024 * 1024


def admin_tls(kubeconfig: Path) -> tuple[str, ssl.SSLContext]:
    """The API server's address and a TLS context with the kubeconfig's client certificate
    (the cluster CA signed it: the node's kubelet API accepts it as well)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the node's is self-signed
    ctx.load_cert_chain(user["client-certificate"], user["client-key"])
    return str(cluster["server"]), ctx


class SpdyCaller:
    """One exec as a Go client would open it, but under the test's control."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    @classmethod
    async def open(cls, kubeconfig: Path, ns: str, pod: str, command: list[str],
                   stdin: bool = False) -> SpdyCaller:
        server, ctx = admin_tls(kubeconfig)
        host, port = server.removeprefix("https://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx,
                                                       limit=4 * MiB)
        query = urlencode([("command", c) for c in command] +
                          [("stdin", str(stdin).lower()), ("stdout", "true"),
                           ("stderr", "true")])
        writer.write((f"POST /api/v1/namespaces/{ns}/pods/{pod}/exec?{query} HTTP/1.1\r\n"
                      f"Host: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                      "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                      "Content-Length: 0\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def syn_stream(self, stream: int, raw_block: bytes) -> bytes:
        body = struct.pack(">IIBB", stream, 0, 0, 0) + self.z.compress(raw_block) + \
            self.z.flush(zlib.Z_SYNC_FLUSH)
        return control(SYN_STREAM, 0, body)

    def stream(self, stream: int, kind: str) -> bytes:
        block = struct.pack(">I", 1)
        for text in ("streamtype", kind):
            block += struct.pack(">I", len(text)) + text.encode()
        return self.syn_stream(stream, block)

    def zero_headers(self, stream: int, inflated: int, count: int | None = None) -> bytes:
        """A header block of ``inflated`` bytes: ``count`` headers (default: exactly as many
        empty ones as fit, so that an uncapped decoder runs through all of them)."""
        n = (inflated - 4) // 8 if count is None else count
        chunks = [self.z.compress(struct.pack(">I", n))]
        left = inflated - 4
        while left > 0:
            step = min(left, 4 * MiB)
            chunks.append(self.z.compress(bytes(step)))
            left -= step
        chunks.append(self.z.flush(zlib.Z_SYNC_FLUSH))
        return control(SYN_STREAM, 0, struct.pack(">IIBB", stream, 0, 0, 0) + b"".join(chunks))

    async def send(self, data: bytes, within: float = 10.0) -> bool:
        """Write; False when the node (through the API server) does not take it in time."""
        self.writer.write(data)
        try:
            await asyncio.wait_for(self.writer.drain(), within)
        except (TimeoutError, ConnectionError):
            return False
        return True

    async def closed_within(self, seconds: float) -> bool:
        """Whether the connection ends (everything read) within ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                while await self.reader.read(MiB):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.transport.abort()


@dataclass
class Cost:
    """What one bomb cost the node."""

    name: str
    rss_growth: float = 0.0  # MiB, peak over the bomb minus before
    # s, worst wake-up delay the node's probe saw: exact when it set a new record, else the
    # bound of the highest histogram bucket that grew; None for a node without the probe.
    loop_lag: float | None = None
    ping: float = 0.0  # s, worst /healthz answer time seen from outside
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        lag = "n/a" if self.loop_lag is None else f"{self.loop_lag * 1000:.0f} ms"
        return (f"{self.name}: peak RSS +{self.rss_growth:.1f} MiB, worst loop lag {lag}, "
                f"worst /healthz {self.ping * 1000:.0f} ms {' '.join(self.notes)}")


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def lag_buckets(metrics_text: str) -> dict[float, float]:
    """``le`` → cumulative count of the node's event-loop lag histogram."""
    out = {}
    for line in metrics_text.splitlines():
        if line.startswith("vk_eci_event_loop_lag_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def lag_max(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("vk_eci_event_loop_lag_max_seconds "):
            return float(line.split()[1])
    return 0.0


def _worst_above(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The upper bound of the highest histogram bucket that gained observations."""
    if not after:
        return None
    grew = [le for le in sorted(after) if after[le] - before.get(le, 0.0) > 0]
    if not grew:
        return 0.0
    # Cumulative buckets: the first bucket that grew bounds the smallest new value; the
    # highest new value lies in the first bucket whose cumulative count reached the total.
    total = after[float("inf")] - before.get(float("inf"), 0.0)
    for le in sorted(after):
        if after[le] - before.get(le, 0.0) >= total:
            return le
    return float("inf")


class Meter:
    """Around one bomb: ``with Meter(pid, health_url, metrics_url, name) as cost: ...``."""

    def __init__(self, pid: int, base_url: str, name: str) -> None:
        self.pid, self.base_url, self.cost = pid, base_url, Cost(name)
        self._stop = threading.Event()
        self._pinger = threading.Thread(target=self._ping, daemon=True)

    def _get(self, path: str) -> str:
        # Long: a stalled node answers late, and the stall belongs in this bomb's window.
        with urllib.request.urlopen(self.base_url + path, timeout=120) as r:
            return str(r.read().decode())

    def _ping(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(OSError):
                self._get("/healthz")
            self.cost.ping = max(self.cost.ping, time.monotonic() - started)
            self._stop.wait(0.02)

    def _reset(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets the RSS high-water mark
        self._rss = _status(self.pid, "VmRSS")

    async def __aenter__(self) -> Cost:
        await asyncio.to_thread(self._reset)
        text = await asyncio.to_thread(self._get, "/metrics")
        self._lag, self._max = lag_buckets(text), lag_max(text)
        self._pinger.start()
        return self.cost

    async def __aexit__(self, *exc: Any) -> None:
        self._stop.set()
        await asyncio.to_thread(self._pinger.join)
        peak = await asyncio.to_thread(_status, self.pid, "VmHWM")
        self.cost.rss_growth = (peak - self._rss) / MiB
        text = await asyncio.to_thread(self._get, "/metrics")
        bound = _worst_above(self._lag, lag_buckets(text))
        record = lag_max(text)
        self.cost.loop_lag = record if record > self._max else bound
