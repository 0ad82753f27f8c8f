"""The layering rules of docs/DEVELOPING.md, checked on every module's imports.

- ``matcher`` imports nothing of ours;
- the cloud side never imports the cluster side, the kubelet API or the emulator;
- nothing of the node imports the emulator (only the entry points that compose products,
  ``cli`` and ``demo``, may start it);
- the emulator is an independent ECI: it may use ``matcher`` and our logging, nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"vk_eci.cli", "vk_eci.demo", "vk_eci.__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted((ROOT / package).rglob("*.py"))}


def _violations(modules: dict[str, set[str]], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in modules.items()
        for name in names
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_the_checker_sees_imports() -> None:
    # Guards the test itself: a broken scanner would make every rule below pass vacuously.
    cli = _modules("vk_eci")["vk_eci.cli"]
    assert "argparse" in cli
    assert any(name.startswith("vk_eci.") for name in cli)


def test_matcher_imports_nothing_of_ours() -> None:
    assert _violations(_modules("matcher"), ("vk_eci",)) == []


def test_cloud_side_never_imports_cluster_side() -> None:
    cloud = {m: i for m, i in _modules("vk_eci").items() if m.startswith("vk_eci.cloud")}
    assert cloud, "no cloud modules found"
    assert _violations(cloud, ("vk_eci.cluster", "vk_eci.kubelet", "vk_eci.emulator")) == []


@pytest.mark.parametrize("side", ["vk_eci.cloud", "vk_eci.cluster", "vk_eci.kubelet"])
def test_node_never_imports_emulator(side: str) -> None:
    modules = {m: i for m, i in _modules("vk_eci").items()
               if m.startswith(side) and m not in ENTRY_POINTS}
    assert _violations(modules, ("vk_eci.emulator",)) == []


def test_emulator_is_independent_of_the_node() -> None:
    modules = {m: i for m, i in _modules("vk_eci").items() if m.startswith("vk_eci.emulator")}
    assert _violations(modules, ("vk_eci.cloud", "vk_eci.cluster", "vk_eci.kubelet",
                                 "vk_eci.provider", "vk_eci.config")) == []
