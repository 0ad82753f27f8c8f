"""vk_eci.cluster.resources: service link variables as the kubelet makes them."""

from __future__ import annotations

from kubernetes_asyncio import client

from vk_eci.cluster.resources import KubePodResources, service_link_env
from vk_eci.provider import PodResources


def svc(name: str, ip: str | None, *ports: tuple[str | None, int, str]) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(cluster_ip=ip, ports=[
            client.V1ServicePort(name=n, port=p, protocol=proto) for n, p, proto in ports]))


def test_service_link_env() -> None:
    env = service_link_env(svc("redis-master", "10.0.0.11", ("db", 6379, "TCP"),
                               (None, 53, "UDP")))
    assert env["REDIS_MASTER_SERVICE_HOST"] == "10.0.0.11"
    assert env["REDIS_MASTER_SERVICE_PORT"] == "6379"
    assert env["REDIS_MASTER_SERVICE_PORT_DB"] == "6379"
    assert env["REDIS_MASTER_PORT"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["REDIS_MASTER_PORT_6379_TCP_PORT"] == "6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_ADDR"] == "10.0.0.11"
    assert env["REDIS_MASTER_PORT_53_UDP"] == "udp://10.0.0.11:53"


def test_headless_service_has_no_variables() -> None:
    assert service_link_env(svc("headless", "None", ("x", 80, "TCP"))) == {}
    assert service_link_env(svc("noip", None, ("x", 80, "TCP"))) == {}


def test_implements_the_protocol() -> None:
    assert isinstance(KubePodResources.__new__(KubePodResources), PodResources)
