"""Which Kubernetes requests the node's fence guards, and the fence's clock."""

from __future__ import annotations

import pytest

from vk_eci.cluster.kube.fence import Fence, Fenced, fenced_request

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


@pytest.mark.parametrize(("method", "path", "params", "fenced"), [
    ("PATCH", "/api/v1/namespaces/{namespace}/pods/{name}/status", {}, True),
    ("DELETE", "/api/v1/namespaces/{namespace}/pods/{name}", {}, True),
    ("POST", "/api/v1/namespaces/{namespace}/events", {}, True),
    ("PATCH", "/api/v1/nodes/{name}/status", {}, True),
    ("POST", "/api/v1/nodes", {}, True),
    ("POST", "/apis/events.k8s.io/v1/namespaces/{namespace}/events", {}, True),
    ("PATCH", LEASES, {"namespace": "kube-node-lease"}, True),
    # The cache advisor's record of demand (written by the node's leader only).
    ("PATCH", "/api/v1/namespaces/{namespace}/configmaps/{name}", {}, True),
    ("POST", "/api/v1/namespaces/{namespace}/configmaps", {}, True),
    # The leader Leases themselves, reviews for the kubelet API, ImageCaches: never fenced.
    ("PUT", LEASES, {"namespace": "vk-system"}, False),
    ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {}, False),
    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {}, False),
    ("PATCH", "/apis/eci.alibabacloud.com/v1/imagecaches/{name}/status", {}, False),
    # Reads never.
    ("GET", "/api/v1/namespaces/{namespace}/pods", {}, False),
    ("GET", "/api/v1/nodes/{name}", {}, False),
    ("GET", "/api/v1/namespaces/{namespace}/configmaps/{name}", {}, False),
])
def test_fenced_requests(method: str, path: str, params: dict[str, str], fenced: bool) -> None:
    assert fenced_request(method, path, params) is fenced


def test_fence_opens_until_the_deadline_and_closes() -> None:
    assert Fence().is_open  # no election: never fenced
    fence = Fence(open_=False)
    with pytest.raises(Fenced, match="pod status"):
        fence.check("pod status")
    fence.extend(Fence.now() + 60)
    fence.check("pod status")
    fence.extend(Fence.now() - 0.001)  # a renewal that began too long ago
    assert not fence.is_open
    fence.extend(Fence.now() + 60)
    fence.close()
    with pytest.raises(Fenced):
        fence.check("a delete")
