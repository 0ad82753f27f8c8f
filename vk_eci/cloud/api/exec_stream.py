"""The node's end of ECI's exec WebSocket (``ExecContainerCommand`` with ``Sync=false``).

ECI does not document the framing; the emulator (:mod:`vk_eci.emulator.exec_ws`) models it as
the CRI streaming server that its ``/exec/?s=<token>`` address resembles: Kubernetes' channel
protocol, asked for as ``v5.channel.k8s.io`` (``v4`` accepted). This module is the one place to
change should the service frame it otherwise.
"""

from __future__ import annotations

import aiohttp

from vk_eci.cloud.api.errors import Retryable

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CONNECT_TIMEOUT = 10.0


class EciExecStream:
    """One open exec stream: ``send(channel, data)``, ``receive()`` until None, ``close()``."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._http, self._ws = http, ws

    @classmethod
    async def connect(cls, uri: str) -> EciExecStream:
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(connect=CONNECT_TIMEOUT))
        try:
            ws = await http.ws_connect(uri, protocols=PROTOCOLS, autoping=True)
        except (aiohttp.ClientError, TimeoutError) as e:
            await http.close()
            # The address is good for 30 s and one use: a failed connect is worth a new call.
            raise Retryable("ExecStreamUnavailable",
                            f"ECI's exec WebSocket did not accept the connection: "
                            f"{type(e).__name__}: {e}") from e
        return cls(http, ws)

    @property
    def closes_stdin(self) -> bool:
        """Whether end of stdin can be signalled (v5); on v4 only closing the stream does."""
        return self._ws.protocol == PROTOCOLS[0]

    async def send(self, channel: int, data: bytes) -> None:
        await self._ws.send_bytes(bytes([channel]) + data)

    async def receive(self) -> tuple[int, bytes] | None:
        """The next ``(channel, data)`` from ECI; None once the stream has closed."""
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                return msg.data[0], bytes(msg.data[1:])
        return None

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._http.close()
