"""A running pod's image change, applied with ECI's ``UpdateContainerGroup``.

What ECI documents (``docs/BEHAVIOUR.md``, "Image changes on a running pod"): only ``Pending``
and ``Running`` groups can be updated; containers are only ever replaced whole (``RenewUpdate``
with every container), and updating init containers restarts the whole instance. So the node
sends the pod's app containers, translated as at create, when an app container's image differs
from the group's; an init container's new image is not applied (the kubelet does not re-run a
finished init container either) and gets a Warning, as does a group ECI cannot update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.provider import Pod

UPDATABLE = ("Pending", "Running")
NOT_APPLIED = "ImageUpdateNotApplied"


@dataclass(frozen=True)
class ImageChange:
    """One container whose image in the pod differs from the group's."""

    name: str
    old: str
    new: str
    init: bool

    def describe(self) -> str:
        return f"{'init ' if self.init else ''}container {self.name}: {self.old} -> {self.new}"


def image_changes(pod: Pod, group: Any) -> list[ImageChange]:
    """The containers of ``pod`` whose image differs from the one ``group`` runs."""
    out = []
    running = {c.name: c.image for c in group.containers or []}
    inits = {c.name: c.image for c in group.init_containers or []}
    for containers, have, init in ((pod.spec.containers or [], running, False),
                                   (pod.spec.init_containers or [], inits, True)):
        for c in containers:
            old = have.get(c.name)
            if old is not None and old != c.image:
                out.append(ImageChange(c.name, old, c.image, init))
    return out


def update_request(group_id: str, create: Any) -> Any:
    """The ``UpdateContainerGroup`` request that gives group ``group_id`` the app containers of
    ``create`` (a ``CreateContainerGroupRequest`` translated from the changed pod), whole."""
    return eci.UpdateContainerGroupRequest(
        container_group_id=group_id, update_type="RenewUpdate",
        container=[eci.UpdateContainerGroupRequestContainer().from_map(c.to_map())
                   for c in create.container or []])
