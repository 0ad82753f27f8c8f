"""``/runningpods/`` bodies: the kubelet's ``ToAPIPod`` shape, encoded with Go's JSON rules."""

from __future__ import annotations

from vk_eci.kubelet.pods import running_pod_list
from vk_eci.provider import RunningPod


def test_no_pod_is_an_empty_items_list_never_null() -> None:
    assert running_pod_list([]) == {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                     "items": []}


def test_items_carry_identity_and_running_containers_only() -> None:
    pods = [RunningPod("ns", "web", "u-1", (("app", "nginx:1.27"), ("side", "busybox"))),
            RunningPod("ns", "bare", "", (("c", ""),))]
    body = running_pod_list(pods)
    assert body["items"] == [
        {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
         "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": {}},
                                 {"name": "side", "image": "busybox", "resources": {}}]},
         "status": {}},
        # Empty strings are omitted as Go's omitempty does.
        {"metadata": {"name": "bare", "namespace": "ns"},
         "spec": {"containers": [{"name": "c", "resources": {}}]}, "status": {}}]
