"""Service access in every container group: the kube-proxy container the node injects.

A Service's ClusterIP is only a rule kube-proxy programs on each node, and no node's
kube-proxy runs in an ECI container group; so the node adds one to each group it creates
(``--cluster-ip-mode kube-proxy``, the default; ``docs/BEHAVIOUR.md`` "Services and DNS"). It
runs in the group's network namespace in ``iptables`` mode and DNATs the pod's own traffic to
a Service's endpoints, as on any node.

The container is the node's, not the tenant's:

- its name :data:`PROXY_CONTAINER` is reserved (a pod with a container of that name is
  refused); the pod's status lists only the pod's own containers, and the kubelet API refuses
  ``logs``/``exec``/``attach`` of the reserved name;
- its credential is a kubeconfig in a ConfigFile volume of its own, mounted only in it, with a
  token of the ``vk-eci-kube-proxy`` service account (``system:node-proxier`` rights: read
  Services, EndpointSlices and Nodes, write Events) that the node requests for it. The API
  server binds a token to a pod only in the service account's own namespace, so the token is
  bound to the virtual Node instead (revoked when the Node object goes) and lives
  :attr:`ServiceAccess.token_seconds`; ECI cannot rewrite a running group's files, so it is
  not refreshed (the proxy keeps its last rules once it expires);
- a pod whose containers share a process namespace could read the proxy's files through
  ``/proc``: such a pod gets no proxy, said in a ``ClusterIPUnavailable`` Warning;
- it is never billed: ``__ECI_RESOURCE_IGNORE__`` leaves it out of the group's size (it has no
  cpu or memory of its own and runs within the pod's), ``ECI_CONTAINER_TYPE=sidecar`` has ECI
  stop it once a Job's containers ended, and ``ECI_CONTAINER_IGNORE_EXIT_CODE`` keeps that stop
  from failing the Job (all three documented ECI container variables).

It gets ``NET_ADMIN`` only (iptables through netlink; ECI allows adding NET_ADMIN and NET_RAW,
the latter only on request), and flags that keep it off what a container cannot do: no conntrack
sysctls (``--conntrack-*=0``), no ``route_localnet`` sysctl (localhost NodePorts off), no OOM
score change, no metrics server, health on loopback only.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml
from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.translation.bounds import Budget, size_of
from vk_eci.cloud.translation.context import (
    CLUSTER_IP_ANNOTATION,
    PodWarning,
    ServiceAccess,
    TranslateContext,
    Warnings,
    proxy_wanted,
)

PROXY_CONTAINER = naming.PROXY_CONTAINER
PROXY_VOLUME = naming.PROXY_CONTAINER
PROXY_DIR = "/var/run/vk-eci-kube-proxy"
MODES = ("kube-proxy", "none")
DEFAULT_REGISTRY = "registry.k8s.io/kube-proxy"
# Documented ECI container variables (see the module docstring).
ECI_ENV = (("__ECI_RESOURCE_IGNORE__", "TRUE"), ("ECI_CONTAINER_TYPE", "sidecar"),
           ("ECI_CONTAINER_IGNORE_EXIT_CODE", "true"))


def default_image(server_version: str, registry: str = DEFAULT_REGISTRY) -> str:
    """The kube-proxy image of the API server's release (``v1.36.3-eks-1`` → ``v1.36.3``)."""
    core = server_version.lstrip("v").split("-", 1)[0].split("+", 1)[0]
    return f"{registry}:v{core}"


def check_reserved(pod: Any) -> None:
    """Refuse a pod that names a container like the node's proxy."""
    for c in [*(pod.spec.init_containers or []), *(pod.spec.containers or [])]:
        if c.name == PROXY_CONTAINER:
            raise InvalidInput(f"container {c.name}", "the name is reserved by the virtual node "
                               "for its kube-proxy")


def kubeconfig(access: ServiceAccess, token: str) -> bytes:
    """The proxy's kubeconfig: the API server, its CA and the token (a secret)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
        "clusters": [{"name": "cluster", "cluster": {
            "server": access.server,
            "certificate-authority-data": base64.b64encode(access.ca_pem).decode()}}],
        "users": [{"name": "proxy", "user": {"token": token}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "cluster", "user": "proxy"}}],
    }).encode()


def proxy_args(access: ServiceAccess) -> list[str]:
    return [f"--kubeconfig={PROXY_DIR}/kubeconfig", "--proxy-mode=iptables",
            f"--hostname-override={access.node_name}",
            # No sysctls: conntrack limits and timeouts stay as the sandbox has them.
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--iptables-localhost-nodeports=false",  # else it sets route_localnet
            "--oom-score-adj=0", "--metrics-bind-address=",
            "--healthz-bind-address=127.0.0.1:10256"]


def apply_service_access(pod: Any, ctx: TranslateContext, req: Any, notes: Warnings,
                         budget: Budget) -> None:
    """Add the proxy container and its volume to ``req`` when the pod gets one."""
    access = ctx.service_access
    if not proxy_wanted(pod, access):
        opted_out = (pod.metadata.annotations or {}).get(
            CLUSTER_IP_ANNOTATION, "").strip().lower() == "false"
        if access is not None and pod.spec.share_process_namespace and not opted_out:
            notes.append(PodWarning("ClusterIPUnavailable", (
                "shareProcessNamespace would let the pod's containers read the injected "
                "kube-proxy's credential: this pod gets no Service (ClusterIP) access; set "
                f"{CLUSTER_IP_ANNOTATION}: \"false\" to say that is intended")))
        return
    assert access is not None
    if not ctx.proxy_token:
        raise InvalidInput(f"pod {pod.metadata.namespace}/{pod.metadata.name}",
                           "no token for its kube-proxy (service account "
                           f"{access.namespace}/{access.account})")
    content = kubeconfig(access, ctx.proxy_token)
    budget.add(f"volume {PROXY_VOLUME}", len(content))
    req.volume = [*(req.volume or []), eci.CreateContainerGroupRequestVolume(
        name=PROXY_VOLUME, type="ConfigFileVolume",
        config_file_volume=eci.CreateContainerGroupRequestVolumeConfigFileVolume(
            config_file_to_path=[
                eci.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
                    path="kubeconfig", content=base64.b64encode(content).decode(),
                    mode=0o400)]))]
    prefix = "CreateContainerGroupRequestContainer"
    args = proxy_args(access)
    budget.add(f"container {PROXY_CONTAINER}", sum(size_of(a) + 1 for a in args))
    container = eci.CreateContainerGroupRequestContainer(
        name=PROXY_CONTAINER, image=access.image, command=["/usr/local/bin/kube-proxy"],
        arg=args, image_pull_policy="IfNotPresent",
        environment_var=[getattr(eci, f"{prefix}EnvironmentVar")(key=k, value=v)
                         for k, v in ECI_ENV],
        volume_mount=[getattr(eci, f"{prefix}VolumeMount")(
            name=PROXY_VOLUME, mount_path=PROXY_DIR, read_only=True)])
    container.security_context = getattr(eci, f"{prefix}SecurityContext")(
        capability=getattr(eci, f"{prefix}SecurityContextCapability")(add=["NET_ADMIN"]))
    req.container = [*(req.container or []), container]
