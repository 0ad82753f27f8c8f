"""Checks shared by several actions: names, images, tags, registry credentials."""

from __future__ import annotations

import re
from typing import Any

from vk_eci.emulator.errors import ApiError, invalid, missing
from vk_eci.emulator.params import Tree, get_list, get_str
from vk_eci.emulator.reference import BadReference, normalize

NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")


def group_name(value: str | None, field: str = "ContainerGroupName") -> str:
    if not value:
        raise missing(field)
    if not 2 <= len(value) <= 128 or not NAME_RE.match(value):
        raise invalid(field, f"{value!r} must be 2-128 characters of lower-case letters, digits "
                             "and hyphens, starting and ending with a letter or digit")
    return value


def image(value: str, field: str) -> str:
    """The normalised image, or InvalidParameter naming the field and the reason."""
    try:
        return normalize(value)
    except BadReference as e:
        raise invalid(field, f"image reference {value!r}: {e.reason}") from None


def credentials(tree: Tree) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for i, item in enumerate(get_list(tree, "ImageRegistryCredential", max_items=20), 1):
        if not isinstance(item, dict):
            raise invalid(f"ImageRegistryCredential.{i}", "expected Server, UserName, Password")
        path = f"ImageRegistryCredential.{i}."
        server = get_str(item, "Server", path=path, required=True)
        user = get_str(item, "UserName", path=path, required=True)
        password = get_str(item, "Password", path=path, required=True)
        assert server is not None and user is not None and password is not None
        out.append((server, user, password))
    return out


def region(tree: Tree, served: str) -> str:
    value = get_str(tree, "RegionId")
    if not value:
        raise missing("RegionId")
    if value != served:
        raise ApiError("InvalidRegionId",
                       f"The specified region {value!r} is not served by this endpoint "
                       f"(it serves {served!r}).", 400)
    return value


def dict_item(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, "expected nested fields")
    return value
