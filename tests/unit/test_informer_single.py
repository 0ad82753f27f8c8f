"""One watch mechanism: ``watch.Watch`` of kubernetes_asyncio is used by one module of
the node only, :mod:`vk_eci.cluster.kube.informer`; every other watcher is an Informer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _uses_watch(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("kubernetes_asyncio") and \
                any(a.name in ("watch", "Watch") for a in node.names):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("kubernetes_asyncio.watch")
                                                for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Watch" and \
                isinstance(node.value, ast.Name) and node.value.id == "watch":
            return True
    return False


def test_watch_is_used_in_the_informer_only() -> None:
    users = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "vk_eci").rglob("*.py")
                   if _uses_watch(p))
    assert users == ["vk_eci/cluster/kube/informer.py"]


def test_the_check_sees_a_watch() -> None:
    # The rule above must be able to fail: a module with a hand-rolled watch is found.
    assert _uses_watch(ROOT / "vk_eci/cluster/kube/informer.py")
    assert not _uses_watch(ROOT / "vk_eci/cluster/pods/controller.py")


def test_each_imagecache_reconcile_step_has_its_module() -> None:
    # A reader finds each step of the ImageCache reconcile in a module named for it.
    package = ROOT / "vk_eci/cluster/imagecaches"
    for step in ("observe", "create", "update", "finalize"):
        module = package / f"{step}.py"
        assert module.exists(), module
    for module in package.glob("*.py"):
        assert len(module.read_text().splitlines()) <= 300, module
