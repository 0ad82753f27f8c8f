"""``TagResources``: tags added to container groups after their create.

As ECI: up to 50 ``ResourceId`` per call, up to 20 ``Tag`` entries, a key the resource carries
already takes the new value, and a resource may carry at most 20 tags. Only the
``ContainerGroup`` resource type is emulated; any other is refused by name.
"""

from __future__ import annotations

from typing import Any

from vk_eci.emulator.context import Ctx
from vk_eci.emulator.errors import ApiError, group_not_found, invalid, missing
from vk_eci.emulator.params import get_str, get_str_list, get_tags

MAX_IDS = 50
MAX_TAGS = 20


def tag_resources(ctx: Ctx) -> dict[str, Any]:
    tree, state = ctx.tree, ctx.state
    kind = get_str(tree, "ResourceType", required=True)
    if kind != "ContainerGroup":
        raise invalid("ResourceType", f"{kind!r}: the emulator tags ContainerGroup only")
    ids = get_str_list(tree, "ResourceId", max_items=MAX_IDS)
    if not ids:
        raise missing("ResourceId.1")
    tags = get_tags(tree, max_items=MAX_TAGS)
    if not tags:
        raise missing("Tag.1.Key")
    state.reap()  # a group whose termination has ended is gone
    groups = []
    for group_id in ids:
        group = state.groups.get(group_id)
        if group is None:
            raise group_not_found(group_id)
        merged = dict(group.tags)
        merged.update(tags)
        if len(merged) > MAX_TAGS:
            raise ApiError("InvalidParameter.TagCount", f"resource {group_id} would carry "
                           f"{len(merged)} tags; at most {MAX_TAGS} are allowed")
        groups.append((group, list(merged.items())))
    for group, new in groups:  # all or nothing: checked above before any change
        state.retag(group, new)
    return {}
