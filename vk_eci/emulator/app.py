"""The :class:`Emulator`: an async context manager serving the ECI API on a loopback port."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from vk_eci.emulator.catalog import registry_key
from vk_eci.emulator.clock import Clock, RealClock
from vk_eci.emulator.faults import Faults
from vk_eci.emulator.groupnet import GroupNetwork
from vk_eci.emulator.livegroups import LiveWorld
from vk_eci.emulator.liveproc import ImagePrograms
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.ratelimit import DEFAULT_LIMITS, DEFAULT_OTHER, STATUS_ACTION, RateLimiter
from vk_eci.emulator.server import TOKEN_HEADER, Service, make_app
from vk_eci.emulator.signature import Verifier
from vk_eci.emulator.state import State
from vk_eci.emulator.timing import Timing

# The SDK sends every parameter in the query string. aiohttp's default 8 KiB request line
# refused any pod with more than a few KB of env or ConfigFile content with a bare 400 that
# the node could only report as an unparseable answer; ECI takes far more (a ConfigFile volume
# alone may hold 60 KB). This is above anything the node sends (cloud/translation/bounds.py: 1 MiB
# of content per request, percent-encoded at most 3 times, plus parameter names).
MAX_REQUEST_LINE = 64 * 1024 * 1024


class Emulator:
    """The offline ECI.

    ``time_scale`` multiplies every modelled duration (0.01: a 50 s pull takes 0.5 s); the
    clock itself runs at real speed (or moves by ``ManualClock.advance``), so timestamps stay
    truthful. ``rate_limits``: None for ECI's documented limits, or a mapping of exactly the
    limits wanted (``{}``: none, e.g. for benchmarks); ``other_limit`` then caps the actions
    the mapping leaves out (default: none). ``private_registries`` maps a registry
    host to (username, password) that pulls from it need. ``auth_clock`` is the server's wall
    clock for signature freshness (default ``time.time``; tests skew it to get stale requests).
    ``group_network`` (root, iproute2; a real clock) gives each group a network namespace with
    its IntranetIp on a bridge the host reaches (``groupnet.py``); ``image_programs`` maps
    image patterns to programs: containers of those images then run for real in their group's
                 control_token: str | None = None,
                 model: EciModel | Mapping[str, Any] | None = None) -> None:
    """

    def __init__(self, access_key_id: str = "AK", access_key_secret: str = "SK",
                 region: str = "cn-hangzhou", time_scale: float = 1.0,
                 clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0, *,
                 rate_limits: Mapping[str, int] | None = None,
                 private_registries: Mapping[str, tuple[str, str]] | None = None,
                 timing: Timing | None = None, seed: int = 0,
                 auth_clock: Callable[[], float] | None = None,
                 other_limit: int | None = None, group_network: bool = False,
                 image_programs: Mapping[str, str] | None = None,
                 control_token: str | None = None,
                 model: EciModel | Mapping[str, Any] | None = None) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        if not access_key_id or not access_key_secret:
            raise ValueError("the emulator needs an access key id and secret")
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.region = region
        self.host = host
        self.clock: Any = clock if clock is not None else RealClock()
        self.timing = timing if timing is not None else Timing(time_scale=time_scale)
        self.model = EciModel.of(model)
        self.state = State(region, self.clock, self.timing, seed, model=self.model)
        for server, (user, password) in (private_registries or {}).items():
            self.state.registries.add_private(server, user, password)
        self.faults = Faults(seed)
        other = other_limit if other_limit is not None else (
            DEFAULT_OTHER if rate_limits is None else None)
        limits = rate_limits
        if limits is None:
            limits = {**DEFAULT_LIMITS, STATUS_ACTION: self.model.status_limit}
        limiter = RateLimiter(limits, other=other, window=self.model.rate_window)
        self._service = Service(self.state, self.faults,
                                Verifier({access_key_id: access_key_secret},
                                         auth_clock or time.time), limiter)
        if image_programs and not group_network:
            raise ValueError("image programs run in their group's network: they need "
                             "group_network=True")
        self.group_network = group_network
        self.image_programs = ImagePrograms(tuple((image_programs or {}).items()))
        self.control_token = control_token or secrets.token_urlsafe(24)
        if not is_loopback(host):
            self._service.control_token = self.control_token
        self._port = port
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def control_headers(self) -> dict[str, str]:
        """Headers for a request to the control paths (``/__emulator/*``)."""
        return {TOKEN_HEADER: self.control_token}

    @property
    def port(self) -> int:
        return self._port

    def throttled(self, action: str) -> int:
        """Requests of ``action`` answered Throttling.User by the rate limits (not by faults)."""
        return int(self._service.limiter.refused.get(action, 0))

    def recorded(self, action: str) -> list[dict[str, str]]:
        """The decoded query of each request of ``action``, in order (signature fields left out)."""
        return self._service.recorded(action)

    @property
    def connections(self) -> int:
        """How many client connections have sent API requests (kept-alive ones count once)."""
        return len(self._service.peers)

    def add_registry(self, server: str, *, plain_http: bool = False, self_signed: bool = False,
                     acr_instance: str | None = None) -> None:
        """A registry served over plain HTTP, or with a self-signed certificate, or an ACR
        Enterprise instance (``cri-…``) pulled from without a secret when a create names it."""
        key = registry_key(server)
        if plain_http:
            self.state.registries.plain_http.add(key)
        if self_signed:
            self.state.registries.self_signed.add(key)
        if acr_instance is not None:
            self.state.registries.add_acr(key, acr_instance)

    def preempt(self, group_id: str) -> float:
        """Reclaim spot group ``group_id``: ECI's ``SpotToBeReleased`` Warning now (or when its
        protection period ends), ``Expired`` three minutes (scaled) later; returns that time."""
        return self.state.preempt(group_id)

    def set_cpu_load(self, load: float, ids: list[str] | None = None) -> list[str]:
        """Make groups ``ids`` (all when None) report ``load`` (0..1) of their CPU in use from
        now on (also ``POST /__emulator/usage``); their cumulative CPU stays monotonic."""
        return self._service.set_cpu_load(load, ids)

    def add_private_registry(self, server: str, username: str, password: str) -> None:
        self.state.registries.add_private(server, username, password)

    def sdk_config(self, **overrides: Any) -> Any:
        """An ``alibabacloud_tea_openapi.models.Config`` pointing the official SDK here."""
        from alibabacloud_tea_openapi.models import Config

        settings: dict[str, Any] = {
            "access_key_id": self.access_key_id, "access_key_secret": self.access_key_secret,
            "region_id": self.region, "endpoint": self.endpoint, "protocol": "http",
            "read_timeout": 10_000, "connect_timeout": 5_000,
        }
        settings.update(overrides)
        return Config(**settings)

    async def start(self) -> None:
        app = make_app(self._service)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5, max_line_size=MAX_REQUEST_LINE)
        await self._runner.setup()
        # Bind the socket ourselves so port 0 gives a port we can report before serving.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.endpoint = f"{self.host}:{self._port}"
        self._service.endpoint = self.endpoint
        if self.group_network and self.state.live is None:
            try:
                network = GroupNetwork.create()
            except BaseException:
                await self.stop()
                raise
            self.state.live = LiveWorld(network, self.image_programs, self.clock, self.timing)

    async def stop(self) -> None:
        self.faults.resume()  # release hung requests so shutdown does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.state.live is not None:
            self.state.live.close()   # processes, namespaces, the bridge
            self.state.live = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
