"""The layering rules of docs/DEVELOPING.md, checked on every module's imports.

The rules themselves are import-linter contracts in pyproject.toml (``[tool.importlinter]``):
``matcher`` imports nothing of ours; the cloud side never imports the cluster side, the kubelet
API or the emulator; nothing of the node imports the emulator and only the entry points import
the runner; the emulator is an independent ECI; the ``cloud``, ``cluster`` and ``controlplane``
packages are ordered in layers. Here they are run, and a cycle checker of our own says that no
module and no package imports itself through others, counting every import: absolute and
relative, under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vk_eci", "matcher")

Graph = Mapping[str, set[str]]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path, module: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` (module ``module``) imports, wherever the import
    stands: ``from a import b`` is module ``a.b`` when that is a module, else ``a``."""

    def nearest(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(nearest(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.add(full if full in known else nearest(source))
    return {name for name in found if name is not None and name != module}


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Every module under ``packages`` → the modules of those packages it imports."""
    paths = {_module_name(p, root): p
             for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    known = set(paths)
    return {module: _imported(path, module, known) for module, path in paths.items()}


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components of more than one node: each is a set of nodes on a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycles(graph: Graph) -> list[str]:
    """Every cycle among modules, and among the sub-packages and modules of each package (a
    package stands for everything under it, so ``a.b`` ⇄ ``a.c`` counts when any module under
    ``a.b`` imports one under ``a.c`` and back)."""
    found = [" ⇄ ".join(c) for c in _strongly_connected(graph)]
    parents = {m.rpartition(".")[0] for m in graph} | {""}
    for parent in sorted(parents):
        prefix = parent + "." if parent else ""

        def child(module: str, prefix: str = prefix) -> str | None:
            if not module.startswith(prefix) or module == prefix.rstrip("."):
                return None
            return prefix + module[len(prefix):].split(".")[0]

        collapsed: dict[str, set[str]] = {}
        for source, targets in graph.items():
            a = child(source)
            if a is None:
                continue
            for target in targets:
                b = child(target)
                if b is not None and b != a:
                    collapsed.setdefault(a, set()).add(b)
        found += [f"in {parent or '(top)'}: " + " ⇄ ".join(c)
                  for c in _strongly_connected(collapsed)
                  if not all(name in graph and not _has_children(name, graph) for name in c)]
    return found


def _has_children(name: str, graph: Graph) -> bool:
    return any(m.startswith(name + ".") for m in graph)


def test_the_checker_sees_imports() -> None:
    # Guards the test itself: a broken scanner would make the cycle check pass vacuously.
    graph = import_graph(ROOT, PACKAGES)
    assert "vk_eci.cli" in graph and "matcher.index" in graph
    # vk_eci.cli imports its sub-commands inside functions only.
    assert "vk_eci.controlplane.commands" in graph["vk_eci.cli"]
    assert any(name.startswith("vk_eci.cloud.") for name in graph["vk_eci.cloud.provider"])


def test_no_import_cycles() -> None:
    assert cycles(import_graph(ROOT, PACKAGES)) == []


def test_the_cycle_checker_reports_hidden_cycles(tmp_path: Path) -> None:
    # A TYPE_CHECKING circle (pkg.steps ⇄ pkg.controller, relative), an in-function one
    # (pkg.a ⇄ pkg.b), and sibling packages importing each other (pkg.low ⇄ pkg.high) through
    # modules that are not themselves on a module cycle.
    files = {
        "pkg/__init__.py": "",
        "pkg/controller.py": "from pkg.steps import step\n",
        "pkg/steps.py": ("from typing import TYPE_CHECKING\n"
                         "if TYPE_CHECKING:\n    from .controller import Controller\n"),
        "pkg/a.py": "def f():\n    import pkg.b\n",
        "pkg/b.py": "def g():\n    from pkg import a\n",
        "pkg/low/__init__.py": "",
        "pkg/low/base.py": "from ..high.top import T\n",
        "pkg/high/__init__.py": "",
        "pkg/high/top.py": "",
        "pkg/high/other.py": "from pkg.low import base\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.steps"] == {"pkg.controller"}
    assert graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.low.base"] == {"pkg.high.top"}
    assert cycles(graph) == [
        "pkg.a ⇄ pkg.b",
        "pkg.controller ⇄ pkg.steps",
        "in pkg: pkg.high ⇄ pkg.low",
    ]


def test_the_import_linter_contracts_hold() -> None:
    # lint-imports, on this tree (PYTHONPATH) and without its cache: prints what breaks.
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())",
         "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
