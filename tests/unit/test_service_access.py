"""The kube-proxy the node injects into each group (cloud/translation/service_access.py), on the
wire form of the request: present by default, absent on opt-out, with its own volume, only
NET_ADMIN, outside the group's size, and never in the pod's status."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.client import (
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
    V1VolumeMount,
)

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.groups.status import group_to_pod_status
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.translation.context import ServiceAccess, TranslateContext
from vk_eci.cloud.translation.pod import translate
from vk_eci.cloud.translation.service_access import PROXY_CONTAINER, default_image
from vk_eci.controlplane import build, kube_proxy

ACCESS = ServiceAccess(image="registry.k8s.io/kube-proxy:v1.36.3", server="https://10.1.0.1:6443",
                       ca_pem=b"-----BEGIN CERTIFICATE-----\nCA\n", node_name="vk",
                       namespace="vk-eci")
TOKEN = "header.payload.signature"


def ctx(access: ServiceAccess | None = ACCESS, token: str | None = TOKEN) -> TranslateContext:
    return TranslateContext(placement=Placement(region_id="cn-hangzhou", vswitch_ids=("vsw-1",),
                                                security_group_id="sg-1"),
                            cluster_name="c", node_name="vk", service_access=access,
                            proxy_token=token)


def pod(annotations: dict[str, str] | None = None, *, share: bool = False,
        name: str = "app") -> V1Pod:
    container = V1Container(name=name, image="python:3.12", volume_mounts=[],
                            resources=V1ResourceRequirements(requests={"cpu": "1",
                                                                       "memory": "2Gi"}))
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", uid="u-1",
                                       annotations=annotations),
                 spec=V1PodSpec(containers=[container], share_process_namespace=share))


def wire(p: V1Pod, c: TranslateContext) -> dict[str, Any]:
    return dict(translate(p, c).request.to_map())


def proxy(req: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in req["Container"] if c["Name"] == PROXY_CONTAINER), None)


def test_injected_by_default_with_its_own_volume_and_only_net_admin() -> None:
    req = wire(pod(), ctx())
    c = proxy(req)
    assert c is not None and c["Image"] == ACCESS.image
    assert "--proxy-mode=iptables" in c["Arg"] and "--hostname-override=vk" in c["Arg"]
    assert "--conntrack-max-per-core=0" in c["Arg"]
    assert c["SecurityContext"]["Capability"]["Add"] == ["NET_ADMIN"]
    env = {e["Key"]: e["Value"] for e in c["EnvironmentVar"]}
    assert env == {"__ECI_RESOURCE_IGNORE__": "TRUE", "ECI_CONTAINER_TYPE": "sidecar",
                   "ECI_CONTAINER_IGNORE_EXIT_CODE": "true"}
    assert "Cpu" not in c and "Memory" not in c
    (mount,) = c["VolumeMount"]
    volume = next(v for v in req["Volume"] if v["Name"] == mount["Name"])
    (file,) = volume["ConfigFileVolume"]["ConfigFileToPath"]
    config = yaml.safe_load(base64.b64decode(file["Content"]))
    assert config["users"][0]["user"]["token"] == TOKEN
    assert config["clusters"][0]["cluster"]["server"] == ACCESS.server
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]) \
        == ACCESS.ca_pem
    tenant = next(c for c in req["Container"] if c["Name"] == "app")
    assert all(m["Name"] != mount["Name"] for m in tenant.get("VolumeMount") or [])


def test_group_size_is_the_pods_own() -> None:
    with_proxy, without = wire(pod(), ctx()), wire(pod(), ctx(access=None))
    assert (with_proxy["Cpu"], with_proxy["Memory"]) == (without["Cpu"], without["Memory"])
    assert proxy(without) is None


@pytest.mark.parametrize("annotations,share", [({"vk-eci.io/cluster-ip": "false"}, False),
                                               ({"vk-eci.io/cluster-ip": "False"}, False),
                                               (None, True)])
def test_opt_out_and_shared_process_namespace_get_none(annotations: dict[str, str] | None,
                                                       share: bool) -> None:
    result = translate(pod(annotations, share=share), ctx())
    assert proxy(dict(result.request.to_map())) is None
    reasons = [w.reason for w in result.warnings if w.reason.startswith("ClusterIP")]
    assert reasons == (["ClusterIPUnavailable"] if share else [])


def test_bad_opt_out_value_and_reserved_name_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"vk-eci\.io/cluster-ip"):
        translate(pod({"vk-eci.io/cluster-ip": "maybe"}), ctx())
    with pytest.raises(InvalidInput, match="reserved"):
        translate(pod(name=PROXY_CONTAINER), ctx(access=None))


def test_status_lists_only_the_pods_containers() -> None:
    from alibabacloud_eci20180808 import models as m

    running = m.DescribeContainerGroupsResponseBodyContainerGroupsContainersCurrentState(
        state="Running", start_time="2026-01-01T00:00:00Z")
    group = m.DescribeContainerGroupsResponseBodyContainerGroups(
        container_group_id="eci-1", status="Running", creation_time="2026-01-01T00:00:00Z",
        intranet_ip="10.0.0.5", containers=[
            m.DescribeContainerGroupsResponseBodyContainerGroupsContainers(
                name=n, ready=True, restart_count=0, current_state=running)
            for n in ("app", PROXY_CONTAINER)])
    status = group_to_pod_status(group, pod())
    assert [s.name for s in status.container_statuses] == ["app"]


def test_image_follows_the_api_servers_release() -> None:
    assert default_image("v1.36.3") == "registry.k8s.io/kube-proxy:v1.36.3"
    assert default_image("v1.33.1-eks-abc") == "registry.k8s.io/kube-proxy:v1.33.1"
    assert default_image("v1.34.0+k3s1", "reg.example/k8s/kube-proxy") == \
        "reg.example/k8s/kube-proxy:v1.34.0"


def test_kube_proxy_pinned_to_the_control_planes_release() -> None:
    assert kube_proxy.version() == build.kubernetes_version()
    assert re.fullmatch(r"v1\.\d+\.\d+", kube_proxy.version())


def test_no_token_is_an_error_not_a_proxy_without_credentials() -> None:
    with pytest.raises(InvalidInput, match="no token"):
        translate(pod(), ctx(token=None))


def test_tenant_mount_of_the_proxy_volume_name_is_refused() -> None:
    p = pod()
    p.spec.containers[0].volume_mounts = [V1VolumeMount(name=PROXY_CONTAINER, mount_path="/x")]
    with pytest.raises(InvalidInput):
        translate(p, ctx())
