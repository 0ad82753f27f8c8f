"""``vk-eci run``: the one place that builds the node's parts (with the factories of
:mod:`vk_eci.runner.parts`) and spawns every long-lived task.

Like kopf's ``running.py``: each root task is named and guarded (a crash is logged and stops
the node, since a node without, say, its lease loop would lie about being alive); the first
task to end, or SIGTERM/SIGINT, stops everything in stages: flag, wait ``grace`` seconds,
cancel, and abandon with a warning what still does not stop.
Order of start, as virtual-kubelet's node: the Node object, the pod informer, start-up
reconciliation (pods ready), then the lease, status and node loops and optional components.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import vk_eci
from vk_eci import log
from vk_eci.config import Settings
from vk_eci.log import node_logger
from vk_eci.metrics import Metrics
from vk_eci.runner import looplag
from vk_eci.runner.parts import (
    FleetRoles,
    admission_webhook,
    build_provider,
    fleet_member,
    kube_annotator,
    legacy_adopter,
    optional_components,
    service_access,
)

SHUTDOWN_GRACE = 5.0
# run()'s answer when this replica lost its node's leadership: main() re-executes the process.
RESTART_AS_STANDBY = 75


@dataclass
class Supervisor:
    """Named, guarded root tasks; ``stopped`` is set when the first one ends or on a signal."""

    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    failed: str | None = None

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks[name] = asyncio.create_task(self._guard(name, coro), name=name)

    async def _guard(self, name: str, coro: Awaitable[None]) -> None:
        try:
            await coro
            node_logger.warning("task %s ended; stopping the node", name)
            self.failed = self.failed or name
        except asyncio.CancelledError:
            raise
        except Exception:
            node_logger.exception("task %s crashed; stopping the node", name)
            self.failed = self.failed or name
        finally:
            self.stopped.set()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Cancel every task, wait ``grace`` seconds for them, then abandon the rest."""
        live = [t for t in self.tasks.values() if not t.done()]
        for task in live:
            task.cancel()
        if not live:
            return
        _, pending = await asyncio.wait(live, timeout=grace)
        for task in pending:
            node_logger.warning("task %s did not stop within %.0fs; abandoning it",
                                task.get_name(), grace)


async def _serve_metrics(metrics: Metrics, host: str, port: int) -> web.AppRunner:
    async def handle(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", handle)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    node_logger.info("metrics on http://%s:%d/metrics", host, port)
    return runner


async def _retry(what: str, action: Callable[[], Awaitable[Any]], stopped: asyncio.Event,
                 fatal: tuple[type[Exception], ...] = ()) -> Any:
    """Run a start-up step until it succeeds (the API server or ECI may not be up yet);
    ``fatal`` errors are not retried."""
    delay = 0.5
    while True:
        try:
            return await action()
        except fatal:
            raise
        except Exception as e:
            node_logger.warning("%s failed: %s; retrying in %.1fs", what, log.redact(str(e)),
                                delay)
        with suppress(TimeoutError):
            async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):
                await stopped.wait()
        if stopped.is_set():
            raise asyncio.CancelledError
        delay = min(delay * 2, 15.0)




async def run(settings: Settings, credential: Any) -> int:
    """Run the node until a signal or a failure; returns the exit code."""
    from vk_eci.cloud.api.client import EciClient, EciClientConfig
    from vk_eci.cluster.kube import api as kube
    from vk_eci.cluster.kube.events import KubeEventRecorder
    from vk_eci.cluster.kube.fence import Fence, Fenced
    from vk_eci.cluster.node import cluster_name
    from vk_eci.cluster.node.controller import NodeController
    from vk_eci.cluster.node.lease import LeaseController
    from vk_eci.cluster.node.standby import DuplicateNode, default_identity, ensure_sole_writer
    from vk_eci.cluster.pods.controller import PodController
    from vk_eci.cluster.pods.reconcile import reconcile
    from vk_eci.cluster.pods.sync import StatusSync
    from vk_eci.cluster.profile.watch import ProfileWatch, profile_location

    sup = Supervisor()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sup.stopped.set)
    metrics = Metrics()
    # Replicas that elect a leader write only while leading (fenced until elected); a single
    # process is never fenced.
    fence = Fence(open_=not settings.node_leader_election)
    try:
        api = await kube.api_client(settings.kubeconfig, fence=fence)
    except kube.KubeConfigError as e:
        print(f"vk-eci run: {e}", file=sys.stderr)
        return 2
    settings = replace(settings, identity=settings.identity or default_identity())
    # The API server names field managers after the user agent: every write says which
    # replica made it (how the standby tests see that two never write at once).
    api.user_agent = f"vk-eci@{settings.identity}/{vk_eci.__version__}"
    # Before anything is built with it: the name on every group and cache.
    try:
        settings = await _retry("reading the cluster name", lambda: cluster_name.resolve(
            api, settings), sup.stopped, fatal=(cluster_name.ClusterNameError,))
    except (cluster_name.ClusterNameError, asyncio.CancelledError) as e:
        await api.close()
        if isinstance(e, asyncio.CancelledError):
            return 0  # stopped while the API server was not answering yet
        node_logger.error("%s", e)
        return 2
    eci_client = EciClient(EciClientConfig(
        region_id=settings.region, credential=credential, endpoint=settings.eci_endpoint,
        protocol=settings.eci_protocol, read_timeout=max(10.0, settings.health_timeout),
        rate_limits=settings.eci_rate_limits,
        rate_share=0.0 if settings.eci_account_sharing else 1.0),
        metrics)
    recorder = KubeEventRecorder(api, settings.node_name)
    try:
        access = await _retry("reading the API server's version", lambda: service_access(
            settings, api), sup.stopped)
    except asyncio.CancelledError:
        await api.close()
        return 0
    # The ECI profile (docs/PROFILE.md), hot-reloaded: its policy is enforced at every create.
    profile = ProfileWatch(api, *profile_location(settings.profile_configmap))
    profile.recorder = recorder
    provider = build_provider(settings, eci_client, api, recorder, metrics, profile, access)
    node = NodeController(api, settings)
    lease = LeaseController(api, settings, node, eci_client.describe_regions, metrics)
    pods = PodController(api, settings, provider, recorder, metrics)
    pods.fence = fence
    profile.on_change.append(pods.requeue_denied)
    if settings.legacy_cluster_name:
        pods.adopt_legacy = legacy_adopter(settings, eci_client)
    status = StatusSync(api, pods)
    # Image caches for pods: the provider's cache step, when it has one, wakes pods
    # waiting for a cache, records the chosen cache on the pod, and keeps its catalog synced.
    chooser = getattr(provider, "cache_decider", None)
    if not hasattr(chooser, "catalog"):
        chooser = None
    if chooser is not None:
        chooser.wake.append(pods.requeue)
        chooser.annotate = kube_annotator(api)
        provider.on_group_events = chooser.group_events
    # The cache advisor: observes through the provider's hooks (here), plans and
    # writes in the leader (lead() below).
    advisor: Any = None
    grants: Any = None
    if settings.imagecache_advisor != "off":
        if chooser is None:
            node_logger.warning("--imagecache-advisor=%s needs the provider's image-cache "
                                "step; the advisor is off", settings.imagecache_advisor)
        else:
            from vk_eci.cluster.imagecaches.secrets import AdvisorGrants
            from vk_eci.runner import advisor as advisor_wiring

            # The advisor's caches of private images are built by the ImageCache controller
            # of this process only (it alone knows the advisor's grants).
            grants = AdvisorGrants() if settings.imagecache_controller else None
            advisor = advisor_wiring.build(settings, api, fence=fence, metrics=metrics,
                                           pods=pods, provider=provider, chooser=chooser,
                                           grants=grants)
    # This process's share of the account's budget (docs/RELIABILITY.md "One account
    # budget"): a standby's weight is small until it leads something.
    member = (fleet_member(api, settings, eci_client, metrics)
              if settings.eci_account_sharing else None)
    roles = FleetRoles(member, standby=settings.node_leader_election)

    def imagecache_leading(now: bool) -> None:
        roles.leading("imagecache-controller", now)
        if grants is not None:  # the advisor may plan private images while it leads here
            grants.controller_leading = now

    async def lead() -> None:
        """The writer's part, in one process per node: the Node, start-up reconciliation, the
        Lease, pod status and (through the queue) creates and deletes."""
        roles.leading("node", True)
        if settings.node_leader_election:
            # A successor takes over a live node (its Lease still runs): it keeps it Ready at
            # once when ECI answers, rather than flashing NotReady until its first heartbeat.
            health = await lease.check()
            if health.ok:
                node.health = health
        await _retry("registering the node", node.register, sup.stopped)
        try:  # the profile before the first create: its policy decides every pod
            await asyncio.wait_for(profile.synced(), PROFILE_SYNC_WAIT)
        except TimeoutError:
            node_logger.warning("profile %s/%s not read within %.0fs; pods denied by the empty "
                                "profile are looked at again once it is", profile.namespace,
                                profile.name, PROFILE_SYNC_WAIT)
        await _retry("start-up reconciliation", lambda: reconcile(pods), sup.stopped)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(lease.run(), name="lease")
                tg.create_task(status.run(), name="pod-status")
                tg.create_task(node.run(), name="node-status")
                if advisor is not None:
                    tg.create_task(advisor.run(), name="imagecache-advisor")
                refresh_volumes = getattr(provider, "run_volume_refresh", None)
                if refresh_volumes is not None:  # docs/BEHAVIOUR.md §6, opt-in per pod
                    tg.create_task(refresh_volumes(), name="volume-refresh")
        except* Fenced as group:
            node_logger.error("node %s: %s lost leadership: %s; stopping (a standby takes "
                              "over)", settings.node_name, settings.identity,
                              group.exceptions[0])
        finally:
            # Fencing: once leadership is gone nothing of ours writes for the node any more.
            await pods.queue.close(grace=0)
            roles.leading("node", False)

    metrics_runner: web.AppRunner | None = None
    cache_api: Any = None
    try:
        if settings.metrics_addr not in ("", "off"):
            host, port = settings.metrics_host_port
            metrics_runner = await _serve_metrics(metrics, host, port)
        sup.spawn("event-loop-lag", looplag.probe(metrics))
        if member is not None:
            sup.spawn("fleet-member", member.run())
        else:  # alone with the account's whole budget: say so (0 would read "waiting")
            metrics.fleet_share.set(1.0)
        # Read-only parts run in every replica, so a standby takes over with warm caches.
        sup.spawn("pod-informer", pods.run())
        sup.spawn("profile", profile.run())
        if settings.webhook_port:
            sup.spawn("admission-webhook", admission_webhook(settings, profile, api))
        if chooser is not None:
            sup.spawn("image-cache-catalog", chooser.catalog.run())
        # The ImageCache controller elects its own leader among every node of the cluster, so
        # its writes must not wait for this node's leadership: a client of its own, unfenced.
        cache_api = (await kube.api_client(settings.kubeconfig)
                     if settings.imagecache_controller else api)
        for name, component in optional_components(
                settings, api, eci_client, metrics,
                cache_observer=chooser.catalog if chooser is not None else None,
                cache_api=cache_api, pod_uid=pods.uid_of, pod_ended=pods.ended,
                grants=grants, on_leading=imagecache_leading):
            sup.spawn(name, component)
        if settings.node_leader_election:
            sup.spawn("node-leader", lead_when_elected(api, settings, lead, fence))
            node_logger.info("node %s: %s stands by for leadership", settings.node_name,
                             settings.identity)
        else:
            try:
                await _retry("checking the node has no other writer", lambda: ensure_sole_writer(
                    api, settings.node_name, settings.identity,
                    observe_for=1.5 * settings.lease_renew_interval), sup.stopped,
                    fatal=(DuplicateNode,))
            except DuplicateNode as e:
                node_logger.error("%s", e)
                sup.failed = "duplicate-node"
                return 3
            sup.spawn("node-writer", lead())
            node_logger.info("node %s running", settings.node_name)
        await sup.stopped.wait()
    except asyncio.CancelledError:
        if not sup.stopped.is_set():
            raise  # cancelled from outside: not ours to swallow
    finally:
        node_logger.info("stopping node %s", settings.node_name)
        await pods.queue.close(grace=SHUTDOWN_GRACE)
        await sup.stop()
        stop_background = getattr(provider, "stop_background", None)
        if stop_background is not None:  # before the clients its copies write through close
            await stop_background()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        with suppress(Exception):
            await _close(eci_client)
        if cache_api is not None and cache_api is not api:
            await cache_api.close()
        await api.close()
    if sup.failed == "node-leader":  # leadership lost (a signal cancels, never ends, it)
        return RESTART_AS_STANDBY
    return 1 if sup.failed else 0




PROFILE_SYNC_WAIT = 30.0  # seconds the first create waits for the profile's first listing

# The node's leader Lease: as client-go's defaults, shortened so that a standby takes over
# well before the node Lease (40 s) expires; renew_deadline < duration fences a deposed leader.
NODE_LEADER_TIMING = {"lease_duration": 8.0, "renew_deadline": 5.0, "retry_period": 1.0}


async def lead_when_elected(api: Any, settings: Settings, lead: Callable[[], Awaitable[None]],
                            fence: Any) -> None:
    """Stand by until this replica leads the node, then ``lead()``. Leadership lost ends the
    run (returns): :func:`main` then re-executes the process, so that a deposed leader stands by
    again as a clean process rather than resuming half-stopped work, and without waiting for
    something outside to restart it (a benchmark's or a test's process has nothing)."""
    from vk_eci.cluster.kube.leader import LeaderElector

    elector = LeaderElector(api, settings.node_leader_lease_name,
                            settings.node_leader_lease_namespace, settings.identity,
                            fence=fence, **NODE_LEADER_TIMING)
    if not await elector.run_once(lead):
        node_logger.error("node %s: %s lost leadership; stopping (a standby takes over)",
                          settings.node_name, settings.identity)


async def _close(eci_client: Any) -> None:
    close = getattr(eci_client, "close", None)
    if close is not None:
        result = close()
        if asyncio.iscoroutine(result):
            await result


def main(settings: Settings) -> int:
    """Entry of ``vk-eci run``: logging, credentials (checked first), then the event loop."""
    log.configure(settings.log_level)
    from vk_eci.cloud.api.credentials import CredentialError, credential_from_env

    try:
        credential = credential_from_env()
    except CredentialError as e:
        print(f"vk-eci run: {e}", file=sys.stderr)
        return 2
    try:
        code = asyncio.run(run(settings, credential))
    except KeyboardInterrupt:
        return 130
    if code == RESTART_AS_STANDBY:
        node_logger.warning("node %s: %s restarts as a standby", settings.node_name,
                            settings.identity)
        sys.stdout.flush()
        sys.stderr.flush()
        # Same command line, same PID (a container's PID 1 stays); every descriptor Python
        # opened is close-on-exec, so nothing of this run survives into the next.
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return code
