"""Build the control-plane binaries from the Go modules pinned in ``hack/``.

Kubernetes publishes no binaries we can download here, so ``kube-apiserver``,
``kube-controller-manager``, ``kube-scheduler``, ``kubectl``, ``etcd`` and ``helm`` are compiled
with the machine's Go toolchain into a per-version cache outside the repository
(``~/.cache/vk-eci/controlplane/<k8s-version>/bin``) so that a machine builds them once.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vk_eci.log import controlplane_logger as log

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"

# (binary name, Go module directory under hack/, package path)
TARGETS: tuple[tuple[str, str, str], ...] = (
    ("kube-apiserver", "controlplane", "k8s.io/kubernetes/cmd/kube-apiserver"),
    ("kube-controller-manager", "controlplane", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    ("kube-scheduler", "controlplane", "k8s.io/kubernetes/cmd/kube-scheduler"),
    ("kubectl", "controlplane", "k8s.io/kubernetes/cmd/kubectl"),
    ("etcd", "controlplane", "go.etcd.io/etcd/server/v3"),
    ("helm", "helm", "helm.sh/helm/v3/cmd/helm"),
)
BINARIES = tuple(name for name, _, _ in TARGETS)


class BuildError(RuntimeError):
    """A binary could not be built; the message names it and carries Go's last lines."""


@dataclass(frozen=True)
class Toolset:
    """Where a built set of binaries lives."""

    version: str
    bin_dir: Path

    def path(self, name: str) -> Path:
        return self.bin_dir / name


def kubernetes_version() -> str:
    """The Kubernetes release pinned in ``hack/controlplane/go.mod``."""
    text = (HACK / "controlplane" / "go.mod").read_text()
    found = re.search(r"^\s*k8s\.io/kubernetes\s+(v\S+)", text, re.MULTILINE)
    if not found:
        raise BuildError("hack/controlplane/go.mod does not require k8s.io/kubernetes")
    return found.group(1)


def pinned(module: str, go_path: str) -> str:
    """The version of Go module ``go_path`` that ``hack/<module>/go.mod`` requires."""
    text = (HACK / module / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(go_path)}\s+(v\S+)", text, re.MULTILINE)
    if not found:
        raise BuildError(f"hack/{module}/go.mod does not require {go_path}")
    return found.group(1)


def cache_root() -> Path:
    base = os.environ.get("VK_ECI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vk-eci")
    return Path(base) / "controlplane"


# Bump when the way binaries are built changes (flags, stamping), to force a rebuild.
BUILD_RECIPE = "3"


def _fingerprint() -> str:
    """Hash of every go.mod/go.sum and the recipe: a change of either means a rebuild."""
    digest = hashlib.sha256(BUILD_RECIPE.encode())
    for module in sorted({module for _, module, _ in TARGETS}):
        for name in ("go.mod", "go.sum"):
            digest.update((HACK / module / name).read_bytes())
    return digest.hexdigest()[:16]


def toolset() -> Toolset:
    version = kubernetes_version()
    return Toolset(version=version, bin_dir=cache_root() / version / "bin")


def is_built(tools: Toolset) -> bool:
    stamp = tools.bin_dir / ".fingerprint"
    return (
        stamp.exists()
        and stamp.read_text().strip() == _fingerprint()
        and all(tools.path(name).exists() for name in BINARIES)
    )


def _version_ldflags(version: str) -> str:
    """Stamp the release into the binaries as Kubernetes' own build does.

    Without it they report ``v0.0.0-master`` and anything that checks the server version
    (``helm install`` with a ``kubeVersion`` constraint, clients' skew warnings) misbehaves.
    """
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    return " ".join(flags)


def _helm_ldflags() -> str:
    """What helm's own Makefile stamps: its version and the Kubernetes version it was built
    against (the default for ``helm template``/``lint`` when no cluster is asked)."""
    go_mod = (HACK / "helm" / "go.mod").read_text()
    helm = re.search(r"^(?:require\s+)?\s*helm\.sh/helm/v3\s+(v\S+)", go_mod, re.MULTILINE)
    client = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", go_mod, re.MULTILINE)
    if not helm or not client:
        raise BuildError("hack/helm/go.mod does not pin helm.sh/helm/v3 and k8s.io/client-go")
    flags = [f"-X helm.sh/helm/v3/internal/version.version={helm.group(1)}",
             "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={client.group(1)}"]
    return " ".join(flags)


def _go_build(module: str, out: Path, package: str, label: str, version: str) -> None:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
    cmd = ["go", "build", "-v", "-o", str(out)]
    if package.startswith("k8s.io/kubernetes/"):
        cmd.append(f"-ldflags={_version_ldflags(version)}")
    elif package.startswith("helm.sh/"):
        cmd.append(f"-ldflags={_helm_ldflags()}")
    cmd.append(package)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=HACK / module, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    compiled = 0
    for line in proc.stdout:
        tail = [*tail[-19:], line.rstrip()]
        compiled += 1
        if compiled % 200 == 0:
            print(f"  {label}: {compiled} packages compiled, {time.monotonic() - started:.0f}s",
                  file=sys.stderr, flush=True)
    if proc.wait() != 0:
        raise BuildError(f"building {label} ({package}) failed:\n" + "\n".join(tail))
    print(f"  {label}: built in {time.monotonic() - started:.0f}s ({compiled} packages)",
          file=sys.stderr, flush=True)


def stamp_of(module: str, recipe: str) -> str:
    """What a single binary's ``.fingerprint`` holds: its recipe and the module's pins."""
    digest = hashlib.sha256(recipe.encode())
    for name in ("go.mod", "go.sum"):
        digest.update((HACK / module / name).read_bytes())
    return digest.hexdigest()[:16]


def single_is_built(module: str, path: Path, recipe: str) -> bool:
    stamp = path.parent / ".fingerprint"
    return (path.exists() and stamp.exists()
            and stamp.read_text().strip() == stamp_of(module, recipe))


def ensure_single(module: str, package: str, path: Path, version: str, recipe: str) -> Path:
    """One binary of the Go module pinned in ``hack/<module>`` at ``path`` (the only one in
    its directory), built unless the ``.fingerprint`` stamp beside it says it was built from
    these go.mod/go.sum with this ``recipe``."""
    if single_is_built(module, path, recipe):
        return path
    stamp = path.parent / ".fingerprint"
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = path.parent / f".{path.name}.tmp"
    _go_build(module, tmp, package, f"{path.name} {version}", version)
    tmp.replace(path)
    stamp.write_text(stamp_of(module, recipe) + "\n")
    log.info("binary built", extra={"binary": path.name, "version": version,
                                    "seconds": round(time.monotonic() - started, 1)})
    return path


@dataclass(frozen=True)
class PinnedBinary:
    """One binary built from the Go module pinned in ``hack/<module>``: its version (of
    ``requirement`` in that go.mod), where it lives, whether it is built, building it.

    ``subdir`` puts it under the control plane's cache (``controlplane/<version>/<subdir>``);
    without one it gets a cache of its own (``<module>/<version>/bin``). ``recipe`` is part of
    the build's fingerprint: a string, or a function of the sources when the program is ours.
    """

    module: str
    package: str
    requirement: str
    name: str
    subdir: str | None = None
    recipe: str | Callable[[], str] = "1"

    def version(self) -> str:
        return pinned(self.module, self.requirement)

    def binary(self) -> Path:
        if self.subdir is not None:
            return cache_root() / self.version() / self.subdir / self.name
        return cache_root().parent / self.module / self.version() / "bin" / self.name

    def fingerprint(self) -> str:
        return stamp_of(self.module, self._recipe())

    def is_built(self) -> bool:
        return single_is_built(self.module, self.binary(), self._recipe())

    def ensure_built(self) -> Path:
        """Build it if missing or stale and return its path; a no-op when built."""
        return ensure_single(self.module, self.package, self.binary(), self.version(),
                             self._recipe())

    def _recipe(self) -> str:
        return self.recipe if isinstance(self.recipe, str) else self.recipe()


def ensure_built() -> Toolset:
    """Build whatever is missing or stale and return the toolset; a no-op when up to date."""
    tools = toolset()
    if is_built(tools):
        return tools
    tools.bin_dir.mkdir(parents=True, exist_ok=True)
    print(f"Building the control plane {tools.version} into {tools.bin_dir} "
          "(once per machine; progress below)", file=sys.stderr, flush=True)
    started = time.monotonic()
    for name, module, package in TARGETS:
        tmp = tools.bin_dir / f".{name}.tmp"
        _go_build(module, tmp, package, name, tools.version)
        tmp.replace(tools.path(name))
    (tools.bin_dir / ".fingerprint").write_text(_fingerprint() + "\n")
    log.info("control plane built", extra={"seconds": round(time.monotonic() - started, 1)})
    print(f"Control plane built in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return tools
