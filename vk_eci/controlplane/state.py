"""The record of a local control plane (``DIR/state.json``), its error, and how its processes
are started: what ``cluster``, ``metrics_server`` and the CLI commands share. Imports only
``controlplane.netns`` of this package.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from vk_eci.controlplane import netns


class ClusterError(RuntimeError):
    """The control plane could not be started or stopped; the message says which part and why."""


@dataclass
class ControlPlane:
    """A running local control plane, as recorded in ``DIR/state.json``."""

    dir: Path
    version: str
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    # Where the API server listens: loopback, or the host end of the node network.
    host: str = "127.0.0.1"
    network: netns.NodeNetwork | None = None

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines): what every service account asked for."""
        return self.dir / "logs" / "audit.log"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def bin_dir(self) -> Path:
        return self.dir / "bin"

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.ports['apiserver']}"

    @property
    def node_kubeconfig(self) -> Path:
        """The kubeconfig a node in the node network uses (the API server at the host end)."""
        return self.dir / ("node-kubeconfig" if self.network else "kubeconfig")

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run this cluster's kubectl with its admin kubeconfig."""
        cmd = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def addon(self, name: str, rbac: str) -> tuple[Path, Path]:
        """An add-on's directory ``DIR/<name>`` and its kubeconfig there, as the service
        account ``kube-system/<name>`` that ``rbac`` (a manifest, applied) creates."""
        directory = self.dir / name
        directory.mkdir(exist_ok=True)
        self.kubectl("apply", "-f", "-", input=rbac)
        return directory, self.account_kubeconfig(name, directory / "kubeconfig")

    def account_kubeconfig(self, account: str, path: Path) -> Path:
        """A kubeconfig at ``path`` for ``kube-system/<account>``, through a bound token (as in a
        pod): the identity of an add-on (metrics-server, CoreDNS) that runs on the host."""
        token = self.kubectl("create", "token", account, "-n", "kube-system",
                             "--duration=48h").stdout.strip()
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": account,
            "clusters": [{"name": "local", "cluster": {
                "server": self.server, "certificate-authority": str(self.dir / "pki" / "ca.crt")}}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": account, "context": {"cluster": "local", "user": account}}]}))
        path.chmod(0o600)
        return path

    def save(self) -> None:
        data = asdict(self) | {"dir": str(self.dir)}
        data["network"] = netns.to_dict(self.network) if self.network else None
        (self.dir / "state.json").write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ControlPlane | None:
        try:
            data = json.loads((directory / "state.json").read_text())
        except FileNotFoundError:
            return None
        network = data.get("network")
        return cls(dir=directory, version=data["version"], ports=data["ports"], pids=data["pids"],
                   host=data.get("host", "127.0.0.1"),
                   network=netns.NodeNetwork(**network) if network else None)

    def running_pids(self) -> dict[str, int]:
        """The recorded processes still running (a pid reused by another program is not ours)."""
        return {name: pid for name, pid in self.pids.items() if is_ours(pid, self.dir)}


def is_ours(pid: int, directory: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie has exited already; only our own processes carry our state directory (as a
    # path prefix: DIR/... — `controlplane1` must not claim the processes of `controlplane10`).
    return stat.split(") ", 1)[-1][:1] != "Z" and f"{directory}/" in cmdline


# The executables a control plane directory's processes run: what `down` may stop by scanning
# /proc even when state.json does not name them (a never-python name: a `vk-eci demo --dir DIR`
# or `cluster down --dir DIR` carrying the directory in its own command line is never hit).
EXECUTABLES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
               "metrics-server", "prometheus")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".state.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start_process(cp: ControlPlane, name: str, cmd: list[str],
                  mode: str = "wb") -> subprocess.Popen[bytes]:
    with open(cp.dir / "logs" / f"{name}.log", mode) as out:
        # A session of its own: the processes outlive `vk-eci cluster up` and are not hit by
        # the terminal's Ctrl-C; `down` stops them by pid.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    # Read, merge, write under a lock: `cp` may be an old copy (a session fixture's, from before
    # a test restarted the API server through its own copy); writing its pids back would make
    # `down` forget the restarted process, which then outlives etcd, orphaned.
    with _locked(cp.dir):
        on_disk = ControlPlane.load(cp.dir)
        if on_disk is not None:
            cp.pids.update({k: v for k, v in on_disk.pids.items() if k != name})
        cp.pids[name] = proc.pid
        cp.save()
    return proc


def strays(directory: Path, known: set[int]) -> dict[int, str]:
    """Processes of ``directory`` that state.json does not name (pid → executable): a
    component whose record was lost still carries the directory in its flags."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in known:
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        exe = os.path.basename(argv[0].decode(errors="replace"))
        if exe in EXECUTABLES and is_ours(int(entry), directory):
            found[int(entry)] = exe
    return found
