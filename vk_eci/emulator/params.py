"""Decoding the SDK's flattened query (``Container.1.Image``) into nested dicts and lists.

The SDK flattens lists 1-based and nested models with dots; unset fields are omitted, so a
list may have holes only if a client skips indexes, which we refuse: it would silently drop data.
"""

from __future__ import annotations

from typing import Any

from vk_eci.emulator.errors import ApiError, invalid, missing

Tree = dict[str, Any]


def unflatten(flat: dict[str, str]) -> Tree:
    """``{"A.1.B": "x", "A.2.B": "y"}`` -> ``{"A": [{"B": "x"}, {"B": "y"}]}``."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if isinstance(node.get(part), dict):
                    raise invalid(key, "a value and nested fields under the same name")
                node[part] = value
            else:
                child = node.get(part)
                if child is None:
                    child = {}
                    node[part] = child
                elif not isinstance(child, dict):
                    raise invalid(key, "nested fields under a plain value")
                node = child
    return _listify(root, "")  # type: ignore[no-any-return]


def _listify(node: Any, path: str) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        indexes = sorted(int(k) for k in node)
        if indexes != list(range(1, len(indexes) + 1)):
            raise invalid(path or "query", f"list indexes must be 1..N without gaps, got {indexes}")
        return [_listify(node[str(i)], f"{path}.{i}") for i in indexes]
    return {k: _listify(v, f"{path}.{k}" if path else k) for k, v in node.items()}


# Typed readers: each names the field in its error.

def get_str(tree: Tree, name: str, *, required: bool = False, path: str = "") -> str | None:
    full = f"{path}{name}"
    value = tree.get(name)
    if value is None:
        if required:
            raise missing(full)
        return None
    if not isinstance(value, str):
        raise invalid(full, "expected a single value")
    if required and value == "":
        raise missing(full)
    return value


def get_int(tree: Tree, name: str, *, path: str = "", lo: int | None = None,
            hi: int | None = None) -> int | None:
    raw = get_str(tree, name, path=path)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{path}{name}", f"{raw!r} is not an integer") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise invalid(f"{path}{name}", f"{value} is outside {lo}..{hi}")
    return value


def get_float(tree: Tree, name: str, *, path: str = "") -> float | None:
    raw = get_str(tree, name, path=path)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise invalid(f"{path}{name}", f"{raw!r} is not a number") from None


def get_bool(tree: Tree, name: str, *, path: str = "", default: bool = False) -> bool:
    raw = get_str(tree, name, path=path)
    if raw is None or raw == "":
        return default
    low = raw.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise invalid(f"{path}{name}", f"{raw!r} is not a boolean (true/false)")


def get_list(tree: Tree, name: str, *, path: str = "", max_items: int | None = None) -> list[Any]:
    value = tree.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{path}{name}", "expected a list (Name.1, Name.2, ...)")
    if max_items is not None and len(value) > max_items:
        raise invalid(f"{path}{name}", f"{len(value)} items, at most {max_items} allowed")
    return value


def get_str_list(tree: Tree, name: str, *, path: str = "",
                 max_items: int | None = None) -> list[str]:
    items = get_list(tree, name, path=path, max_items=max_items)
    for i, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise invalid(f"{path}{name}.{i}", "expected a single value")
    return items


def get_tags(tree: Tree, *, max_items: int = 20) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    for i, item in enumerate(get_list(tree, "Tag", max_items=max_items), 1):
        if not isinstance(item, dict):
            raise invalid(f"Tag.{i}", "expected Key and Value")
        key = get_str(item, "Key", path=f"Tag.{i}.", required=True)
        assert key is not None
        tags.append((key, get_str(item, "Value", path=f"Tag.{i}.") or ""))
    return tags


def get_json_id_list(tree: Tree, name: str, *, max_items: int) -> list[str] | None:
    """``ContainerGroupIds``: a JSON array inside one string."""
    import json

    raw = get_str(tree, name)
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid(name, "expected a JSON array of ids, e.g. [\"eci-1\"]") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, "expected a JSON array of strings")
    if len(value) > max_items:
        raise invalid(name, f"{len(value)} ids, at most {max_items} allowed")
    return value


__all__ = ["ApiError", "Tree", "unflatten"]
