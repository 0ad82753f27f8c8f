"""Start and stop a real local control plane on 127.0.0.1 (or on a node network's host end).

``up`` starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler as detached
processes (they outlive the command), writes ``DIR/kubeconfig`` and ``DIR/state.json`` and returns
once the API server is ready and the default service account exists. With ``node_network``
(``vk-eci cluster up --node-network``) it first makes the node's network namespace (see
:mod:`vk_eci.controlplane.netns`), serves the API server on the host end of its veth pair and
writes ``DIR/node-netns``, ``DIR/node-ip``, ``DIR/host-ip`` and ``DIR/node-kubeconfig``.
``down`` stops every process that ``up``, ``restart`` or an add-on recorded, any component that
still carries the directory in its flags though its record was lost, and everything running in
the namespace — one at a time, consumers before the API server before etcd, each waited for and
killed if it will not stop — removes the namespace and its link, and leaves none behind.
This is synchronous code: it runs from the CLI and from pytest fixtures, never on an event loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

from vk_eci.controlplane import build, netns, pki
from vk_eci.controlplane.state import ClusterError as ClusterError  # raised by up(): re-exported
from vk_eci.controlplane.state import ControlPlane as ControlPlane  # returned by up(): re-exported
from vk_eci.controlplane.state import is_ours, start_process, strays
from vk_eci.log import controlplane_logger as log

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SERVICE_CIDR = "10.0.0.0/24"
AUDIT_POLICY = "audit-policy.yaml"


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _kubeconfig(path: Path, server: str, ca: Path, client: pki.KeyPair, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "vk-eci-local",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert),
                                          "client-key": str(client.key)}}],
        "contexts": [{"name": "vk-eci-local",
                      "context": {"cluster": "vk-eci-local", "user": user}}],
        "current-context": "vk-eci-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _audit_policy(directory: Path, *, status_writes: bool) -> Path:
    """Metadata of service accounts' requests only (small: the control plane's own components
    and the admin are not recorded). With ``status_writes``, also every pod status write, of
    any client: what a node costs the API server, counted per namespace and client, which the
    API server's metrics cannot tell (off by default: at benchmark sizes it is a line per write
    the API server waits for)."""
    rules: list[dict[str, object]] = [{"level": "Metadata",
                                       "userGroups": ["system:serviceaccounts"]}]
    if status_writes:
        rules.append({"level": "Metadata", "verbs": ["patch", "update"],
                      "resources": [{"group": "", "resources": ["pods/status"]}]})
    path = directory / AUDIT_POLICY
    path.write_text(yaml.safe_dump({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [*rules, {"level": "None"}]}, sort_keys=False))
    return path


def _commands(cp: ControlPlane, tools: build.Toolset, pki_dir: Path) -> dict[str, list[str]]:
    d, p = cp.dir, cp.ports
    etcd_url = f"http://127.0.0.1:{p['etcd']}"
    ca = str(pki_dir / "ca.crt")
    common = ["--bind-address=127.0.0.1", "--v=1"]
    return {
        "etcd": [
            str(tools.path("etcd")), "--name=vk-eci", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=vk-eci=http://127.0.0.1:{p['etcd_peer']}",
            "--listen-metrics-urls=", "--log-level=warn",
            # A throwaway test cluster: durability is not worth the fsync latency.
            "--unsafe-no-fsync",
        ],
        "kube-apiserver": [
            str(tools.path("kube-apiserver")), f"--bind-address={cp.host}", "--v=1",
            f"--etcd-servers={etcd_url}",
            f"--secure-port={p['apiserver']}", f"--advertise-address={cp.host}",
            f"--cert-dir={d / 'pki'}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={ca}",
            f"--kubelet-client-certificate={pki_dir / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki_dir / 'apiserver-kubelet-client.key'}",
            # As kubeadm: reach kubelets by InternalIP first (a node name need not resolve).
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            # No --kubelet-certificate-authority: a virtual node serves its kubelet API with its
            # own (self-signed or operator-given) certificate, as in many production clusters.
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # 127.0.0.1 is not a valid endpoint address for the `kubernetes` service.
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            # The aggregation layer (metrics.k8s.io from metrics-server): the API server
            # proxies to the APIService's endpoints directly (no kube-proxy here) and
            # authenticates itself with the front-proxy client certificate.
            "--enable-aggregator-routing=true",
            f"--requestheader-client-ca-file={pki_dir / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki_dir / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki_dir / 'front-proxy-client.key'}",
            # Which verbs a service account (the node under the chart's RBAC) really uses.
            f"--audit-policy-file={d / AUDIT_POLICY}", f"--audit-log-path={cp.audit_log}",
            "--audit-log-format=json", "--audit-log-mode=blocking",
        ],
        "kube-controller-manager": [
            str(tools.path("kube-controller-manager")), *common,
            f"--kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--authentication-kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'controller-manager.kubeconfig'}",
            f"--secure-port={p['controller_manager']}", "--leader-elect=false",
            f"--service-account-private-key-file={pki_dir / 'sa.key'}",
            f"--root-ca-file={ca}", "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Short windows so that tests see a node go NotReady within seconds, not minutes.
            "--node-monitor-period=2s", "--node-monitor-grace-period=20s",
            # HPAs act within seconds of a metrics change, not after the 15 s default.
            "--horizontal-pod-autoscaler-sync-period=3s",
            f"--cluster-signing-cert-file={ca}", f"--cluster-signing-key-file={pki_dir / 'ca.key'}",
        ],
        "kube-scheduler": [
            str(tools.path("kube-scheduler")), *common,
            f"--kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'scheduler.kubeconfig'}",
            f"--secure-port={p['scheduler']}", "--leader-elect=false",
        ],
    }


def _make_pki(directory: Path, pki_dir: Path, server: str, host: str) -> None:
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca(pki_dir)
    hosts = tuple(dict.fromkeys((
        "127.0.0.1", host, "localhost", "10.0.0.1", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")))
    pki.issue(ca, pki_dir, "apiserver", cn="kube-apiserver", server=True, hosts=hosts)
    front_proxy = pki.make_ca(pki_dir, "front-proxy-ca")
    pki.issue(front_proxy, pki_dir, "front-proxy-client", cn="front-proxy-client")
    pki.issue(ca, pki_dir, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client",
              org="system:masters")
    pki.make_service_account_key(pki_dir)
    users = {
        "kubeconfig": ("admin", "system:masters"),
        "controller-manager.kubeconfig": ("system:kube-controller-manager", None),
        "scheduler.kubeconfig": ("system:kube-scheduler", None),
    }
    for filename, (cn, org) in users.items():
        client = pki.issue(ca, pki_dir, filename.split(".")[0] + "-client", cn=cn, org=org)
        _kubeconfig(directory / filename, server, ca.cert, client, cn)


def _check_alive(cp: ControlPlane, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, proc in procs.items():
        if proc.poll() is not None:
            tail = (cp.dir / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"{name} exited with {proc.returncode} while starting:\n{tail}")


def _wait_ready(cp: ControlPlane, procs: dict[str, subprocess.Popen[bytes]],
                deadline: float) -> None:
    while True:
        _check_alive(cp, procs)
        ready = cp.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        if ready.returncode == 0 and ready.stdout.strip() == "ok":
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"kube-apiserver not ready: {ready.stdout or ready.stderr}")
        time.sleep(0.2)


def _wait_service_account(cp: ControlPlane, procs: dict[str, subprocess.Popen[bytes]],
                          deadline: float) -> None:
    while True:
        _check_alive(cp, procs)
        if cp.kubectl("get", "serviceaccount", "default", "-n", "default", check=False,
                      timeout=10).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ClusterError("the default service account did not appear "
                               "(kube-controller-manager not working?)")
        time.sleep(0.2)


def up(directory: Path, *, timeout: float = 120, node_network: bool = False,
       apiserver: tuple[str, Path] | None = None,
       audit_status_writes: bool = False) -> ControlPlane:
    """Start a control plane in ``directory`` and return when it is ready; with
    ``node_network``, behind a network namespace for the node (see the module's doc). With
    ``apiserver`` = (version, binary) that kube-apiserver runs with etcd alone: the controllers
    here are newer, which the version-skew policy forbids (so no default service accounts).
    ``audit_status_writes`` adds every pod status write to the audit log (tests)."""
    directory = directory.resolve()
    existing = ControlPlane.load(directory)
    if existing is not None and existing.running_pids():
        raise ClusterError(
            f"a cluster is already up in {directory} (pids "
            f"{', '.join(map(str, existing.running_pids().values()))}); "
            f"run `vk-eci cluster down --dir {directory}` first")
    tools = build.ensure_built()
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("etcd", "logs"):
        if (directory / stale).exists():
            subprocess.run(["rm", "-rf", str(directory / stale)], check=True)
    (directory / "logs").mkdir()
    ports = dict(zip(("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler"),
                     _free_ports(5), strict=True))
    cp = ControlPlane(dir=directory, version=apiserver[0] if apiserver else tools.version,
                      ports=ports)
    if node_network:
        cp.network = netns.create(directory)
        cp.host = cp.network.host_ip
        cp.save()   # recorded before anything else can fail, so that `down` finds it
    pki_dir = directory / "pki"
    try:
        _make_pki(directory, pki_dir, cp.server, cp.host)
    except BaseException:
        down(directory)
        raise
    if cp.network:
        netns.write_files(directory, cp.network)
        shutil.copyfile(cp.kubeconfig, cp.node_kubeconfig)
        cp.node_kubeconfig.chmod(0o600)
    cp.bin_dir.mkdir(exist_ok=True)
    for name in build.BINARIES:
        link = cp.bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(apiserver[1] if apiserver and name == "kube-apiserver"
                        else tools.path(name))

    procs: dict[str, subprocess.Popen[bytes]] = {}
    _audit_policy(directory, status_writes=audit_status_writes)
    commands = _commands(cp, tools, pki_dir)
    if apiserver:
        commands["kube-apiserver"][0] = str(apiserver[1])
    deadline = time.monotonic() + timeout
    try:
        # The controllers need the RBAC roles that the API server bootstraps: start them after
        # /readyz, or they fail on their first authorised call and exit.
        for name in ("etcd", "kube-apiserver"):
            procs[name] = start_process(cp, name, commands[name])
        _wait_ready(cp, procs, deadline)
        if apiserver is None:
            for name in ("kube-controller-manager", "kube-scheduler"):
                procs[name] = start_process(cp, name, commands[name])
            _wait_service_account(cp, procs, deadline)
    except BaseException:
        down(directory)
        raise
    log.info("control plane up", extra={"dir": str(directory),
                                        "seconds": round(time.monotonic() - started, 1)})
    return cp


def down(directory: Path, *, grace: float = 10) -> list[str]:
    """Stop every process ``up`` (or ``restart``, or an add-on) started in ``directory``;
    returns the names that were running. Each is stopped and gone before the next is signalled,
    consumers first and etcd last; one that ignores SIGTERM for ``grace`` seconds is killed."""
    directory = directory.resolve()
    cp = ControlPlane.load(directory)
    if cp is None:
        netns.remove(directory, grace=grace)
        for pid in strays(directory, set()):   # a lost state file: stop what still runs
            _stop(pid, directory, grace)
        return []
    running = cp.running_pids()
    # A component whose record was lost (started from an old copy of the state) still has the
    # directory in its flags: found by name, stopped in its place in the order.
    for pid, exe in strays(directory, set(running.values())).items():
        running[exe if exe not in running else f"{exe} (pid {pid})"] = pid
    # Stop the consumers (add-ons such as metrics-server first) before etcd so that they shut
    # down cleanly.
    rank = {name: i for i, name in enumerate(reversed(COMPONENTS))}
    order = sorted(running, key=lambda n: rank.get(n.split(" ")[0], -1))
    # The node and anything else started inside the namespace first, while the API server it
    # may still talk to on its way out is up. The link goes last: a process whose listening
    # address vanished under it hangs in its shutdown.
    if netns.stop_processes(directory, grace=grace):
        order.insert(0, "node network processes")
    # One at a time, each gone before the next is signalled: stopped all at once, the API
    # server (its etcd gone) or metrics-server (its API server gone) hang in shutdown until
    # killed, which cost every `down` the whole grace period; in order it takes about 2 s.
    for name in (n for n in order if n in running):
        _stop(running[name], directory, grace)
    netns.remove(directory, grace=grace)
    (directory / "state.json").unlink(missing_ok=True)
    return order


def _stop(pid: int, directory: Path, grace: float) -> None:
    """SIGTERM, wait up to ``grace``; then SIGKILL and wait until it is gone (reaped if ours)."""
    _signal(pid, signal.SIGTERM)
    if not _gone(pid, directory, grace):
        log.warning("did not stop on SIGTERM: killed", extra={"pid": pid, "seconds": grace})
        _signal(pid, signal.SIGKILL)
        _gone(pid, directory, 10.0)


def _gone(pid: int, directory: Path, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        _reap(pid)
        if not is_ours(pid, directory):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def restart(directory: Path, name: str, *, down_for: float = 0.0, timeout: float = 60,
            ) -> ControlPlane:
    """Stop one component (SIGTERM, then SIGKILL), keep it down ``down_for`` seconds, start it
    again with the same command and state (etcd's data stays), and wait until it serves.
    For fault tests: an API server restart with etcd kept."""
    directory = directory.resolve()
    cp = ControlPlane.load(directory)
    if cp is None or name not in cp.running_pids():
        raise ClusterError(f"{name} is not running in {directory}")
    _stop(cp.running_pids()[name], directory, 10)
    time.sleep(down_for)
    commands = _commands(cp, build.ensure_built(), directory / "pki")
    procs = {name: start_process(cp, name, commands[name], mode="ab")}
    if name == "kube-apiserver":
        _wait_ready(cp, procs, time.monotonic() + timeout)
    return cp


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # Children of this very process (fixtures) must be reaped or they linger as zombies.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
