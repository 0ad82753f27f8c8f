"""cloud/api/reuse.py: a group answered as before is handed to the SDK as its id alone."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.test_eci_lean import BODY
from vk_eci.cloud.api.reuse import Reuse


def answer(*statuses: str) -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    [group] = body["ContainerGroups"]
    body["ContainerGroups"] = [dict(copy.deepcopy(group), ContainerGroupId=f"eci-{i}",
                                    Status=status) for i, status in enumerate(statuses)]
    return body


def test_only_the_groups_answered_as_before_are_cut_to_their_id() -> None:
    first = Reuse(lambda gid: None)
    first.answered(answer("Running", "Pending"), {})
    assert set(first.prints) == {"eci-0", "eci-1"}
    held = {gid: (print_, object()) for gid, print_ in first.prints.items()}
    second = Reuse(held.get)
    body, reused = answer("Running", "Running"), {}
    second.answered(body, reused)
    # eci-0 is answered as before: the held description stands in for it.
    assert body["ContainerGroups"][0] == {"ContainerGroupId": "eci-0"}
    assert reused == {"eci-0": held["eci-0"][1]}
    # eci-1 changed: read in full, with its new fingerprint.
    assert body["ContainerGroups"][1]["Status"] == "Running"
    assert second.prints["eci-0"] == first.prints["eci-0"]
    assert second.prints["eci-1"] != first.prints["eci-1"]


def test_an_answer_without_groups_or_ids_is_left_as_it_is() -> None:
    reuse = Reuse(lambda gid: (0, object()))
    for body in ({"RequestId": "r"}, {"ContainerGroups": None},
                 {"ContainerGroups": [{"Status": "Running"}, "odd"]}):
        before = copy.deepcopy(body)
        reuse.answered(body, {})
        assert body == before
    assert reuse.prints == {}
