"""Pod → ``CreateContainerGroupRequest``, a pure function of the pod and its context.

:func:`check_supported` refuses pods the virtual node cannot run (DaemonSet-owned, host
namespaces, hostPath, privileged); :func:`translate` builds the request and, in the same single
walk over the pod, the :class:`PodWarning` list of what it skipped or folded (optional objects
that are absent, securityContext fields ECI has no place for, startup probes, sidecars…). Both
raise :class:`InvalidInput` naming the thing and the reason (and :class:`MissingDependency`, with
the virtual-kubelet's event reason, when a mandatory secret or config map is absent); nothing here
ever echoes a secret's value.

Native sidecars (init containers with ``restartPolicy: Always``) become ECI app containers, sent
before the pod's own containers: ECI starts app containers together once the init containers
ended, so a sidecar runs beside the app but no longer before the init containers that follow it
(said in a ``SidecarStartOrder`` Warning when there are any).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api import naming
from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.annotations import apply_placement, parse_placement
from vk_eci.cloud.placement.data_cache import host_path_refusal
from vk_eci.cloud.placement.specs import (
    choose_spec,
    container_gpus,
    container_resources,
    use_specs_of,
)
from vk_eci.cloud.translation.bounds import Budget, check_string, pod_budget, size_of
from vk_eci.cloud.translation.context import CacheDecision, PodWarning, TranslateContext, Warnings
from vk_eci.cloud.translation.credentials import registry_credentials
from vk_eci.cloud.translation.dns import apply_dns
from vk_eci.cloud.translation.env import EnvVar, container_env, expand
from vk_eci.cloud.translation.probes import apply_lifecycle, apply_probes
from vk_eci.cloud.translation.security import apply_security, unenforced_security
from vk_eci.cloud.translation.service_access import apply_service_access, check_reserved
from vk_eci.cloud.translation.volumes import translate_volumes, volume_type

MAX_CONTAINERS = 20


@dataclass(frozen=True)
class Translation:
    """The request for a pod and what translating it skipped or folded (Warning events)."""

    request: Any
    warnings: tuple[PodWarning, ...]


def is_sidecar(container: Any) -> bool:
    """A native sidecar: an init container that keeps running (``restartPolicy: Always``)."""
    return getattr(container, "restart_policy", None) == "Always"


def check_supported(pod: Any) -> None:
    """Raise :class:`InvalidInput` saying why when this node must not run ``pod``."""
    for owner in pod.metadata.owner_references or []:
        if owner.kind == "DaemonSet":
            raise InvalidInput(f"pod {_pod_name(pod)}",
                               f"owned by DaemonSet {owner.name}: daemons belong on real nodes")
    spec = pod.spec
    for flag, field in (("host_network", "hostNetwork"), ("host_pid", "hostPID"),
                        ("host_ipc", "hostIPC")):
        if getattr(spec, flag, None):
            raise InvalidInput(f"pod {_pod_name(pod)}",
                               f"{field} is set: ECI instances have no host to share")
    for vol in spec.volumes or []:
        refusal = host_path_refusal(pod.metadata.annotations, vol) \
            if vol.host_path is not None else None
        if refusal is not None:
            raise InvalidInput(f"volume {vol.name} (hostPath)", refusal)
    for c in list(spec.init_containers or []) + list(spec.containers or []):
        sc = c.security_context
        if sc is not None and sc.privileged:
            raise InvalidInput(f"container {c.name}",
                               "privileged containers are not supported on ECI")
    if not spec.containers:
        raise InvalidInput(f"pod {_pod_name(pod)}", "has no containers")
    check_reserved(pod)
    count = len(spec.containers) + len(spec.init_containers or [])
    if count > MAX_CONTAINERS:
        raise InvalidInput(f"pod {_pod_name(pod)}",
                           f"{count} containers, ECI allows {MAX_CONTAINERS} per group")


def _pod_name(pod: Any) -> str:
    return f"{pod.metadata.namespace or 'default'}/{pod.metadata.name}"


def effective_pull_policy(container: Any) -> str:
    """The pull policy Kubernetes applies (``Always`` for ``:latest`` or no tag)."""
    if container.image_pull_policy:
        return str(container.image_pull_policy)
    image = container.image or ""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _env_models(env: list[EnvVar], prefix: str) -> list[Any]:
    out = []
    for var in env:
        item = getattr(eci, f"{prefix}EnvironmentVar")(key=var.name)
        if var.field_path is not None:
            item.field_ref = getattr(eci, f"{prefix}EnvironmentVarFieldRef")(
                field_path=var.field_path)
        else:
            item.value = var.value
        out.append(item)
    return out


def _expanded(items: list[str] | None, what: str, values: dict[str, str],
              budget: Budget) -> list[str] | None:
    """Command or args (``what``: "container web args"), expanded against the environment
    and charged to the pod's budget."""
    out = []
    for i, text in enumerate(items or []):
        thing = f"{what}[{i}]"
        value = expand(text, values.get, thing)
        size = size_of(value) + 1  # and its NUL, as execve counts
        check_string(thing, size)
        budget.add(thing, size)
        out.append(value)
    return out or None


def translate_container(pod: Any, container: Any, ctx: TranslateContext, *, init: bool,
                        group_cpu: float | None, group_memory: float | None,
                        notes: Warnings, budget: Budget | None = None) -> Any:
    """One ECI container (``init`` selects the init-container model); what it builds is
    charged to ``budget`` (the pod's request)."""
    prefix = ("CreateContainerGroupRequestInitContainer" if init
              else "CreateContainerGroupRequestContainer")
    own = budget if budget is not None else pod_budget(_pod_name(pod))
    env = container_env(pod, container, ctx, group_cpu, group_memory, notes, own)
    values = {v.name: v.value for v in env if v.value is not None}
    model = getattr(eci, prefix)(
        name=container.name, image=container.image,
        command=_expanded(container.command, f"container {container.name} command", values,
                          own),
        arg=_expanded(container.args, f"container {container.name} args", values, own),
        working_dir=container.working_dir or None,
        image_pull_policy=ctx.cache.pull_policy_overrides.get(
            container.name, effective_pull_policy(container)),
        termination_message_path=container.termination_message_path or None,
        termination_message_policy=container.termination_message_policy or None)
    model.environment_var = _env_models(env, prefix) or None
    res = container_resources(container)
    model.cpu = res.cpu or None
    model.memory = res.memory or None
    model.gpu = container_gpus(container) or None
    model.port = [getattr(eci, f"{prefix}Port")(port=int(p.container_port),
                                               protocol=(p.protocol or "TCP").upper())
                  for p in container.ports or []] or None
    model.volume_mount = [getattr(eci, f"{prefix}VolumeMount")(
        name=m.name, mount_path=m.mount_path, sub_path=m.sub_path or None,
        read_only=bool(m.read_only), mount_propagation=m.mount_propagation or None)
        for m in container.volume_mounts or []] or None
    apply_security(model, container, pod.spec.security_context, prefix)
    if not init:
        apply_probes(model, container, prefix, notes)
        apply_lifecycle(model, container)
        model.stdin = container.stdin or None
        model.stdin_once = container.stdin_once or None
        model.tty = container.tty or None
    return model


def _check_mounts(pod: Any) -> None:
    volumes = {v.name for v in pod.spec.volumes or []}
    for c in list(pod.spec.init_containers or []) + list(pod.spec.containers or []):
        for m in c.volume_mounts or []:
            if m.name not in volumes:
                raise InvalidInput(f"container {c.name} volume mount {m.name}",
                                   "no volume of that name in the pod")


def _group_name_for(pod: Any) -> str:
    return naming.group_name(pod.metadata.namespace or "default", pod.metadata.name)


def pod_to_request(pod: Any, ctx: TranslateContext) -> Any:
    """The ``CreateContainerGroupRequest`` for ``pod`` (``ClientToken`` = pod UID)."""
    return translate(pod, ctx).request


def translate(pod: Any, ctx: TranslateContext) -> Translation:
    """The request for ``pod`` and its warnings, in one pass (see the module docstring)."""
    check_supported(pod)
    _check_mounts(pod)
    notes: Warnings = []
    spec, meta = pod.spec, pod.metadata
    annotations = meta.annotations or {}
    size = choose_spec(spec.containers, spec.init_containers or [],
                       use_specs_of(annotations))
    req = eci.CreateContainerGroupRequest(
        region_id=ctx.placement.region_id, zone_id=ctx.placement.zone_id or None,
        v_switch_id=",".join(ctx.placement.vswitch_ids) or None,
        security_group_id=ctx.placement.security_group_id or None,
        container_group_name=_group_name_for(pod), client_token=meta.uid,
        restart_policy=spec.restart_policy or "Always",
        termination_grace_period_seconds=spec.termination_grace_period_seconds,
        active_deadline_seconds=spec.active_deadline_seconds,
        cpu=size.cpu, memory=size.memory, instance_type=size.instance_type,
        host_name=spec.hostname or None,
        share_process_namespace=spec.share_process_namespace or None,
        cpu_architecture=ctx.cpu_architecture)
    req.tag = [eci.CreateContainerGroupRequestTag(key=k, value=v) for k, v in naming.pod_tags(
        ctx.cluster_name, ctx.node_name, meta.namespace or "default", meta.name,
        meta.uid).items()]
    inits = list(spec.init_containers or [])
    sidecars = [c for c in inits if is_sidecar(c)]
    inits = [c for c in inits if not is_sidecar(c)]
    _sidecar_warnings(pod, sidecars, notes)
    budget = pod_budget(_pod_name(pod))
    req.container = [translate_container(pod, c, ctx, init=False, group_cpu=size.cpu,
                                         group_memory=size.memory, notes=notes, budget=budget)
                     for c in [*sidecars, *spec.containers]]
    req.init_container = [translate_container(pod, c, ctx, init=True, group_cpu=size.cpu,
                                              group_memory=size.memory, notes=notes,
                                              budget=budget)
                          for c in inits] or None
    req.volume = translate_volumes(pod, ctx, size.cpu, size.memory, notes, budget) or None
    pull_names = [s.name for s in spec.image_pull_secrets or [] if s.name]
    if missing := [n for n in pull_names if n not in ctx.secrets]:
        # Else a typo in its name only shows later as ECI's failed pull of a private image.
        notes.append(PodWarning("FailedToRetrieveImagePullSecret", (
            f"image pull secret(s) {', '.join(missing)} not found in namespace "
            f"{meta.namespace}; pulling without them")))
    creds = registry_credentials(pull_names, ctx.secrets)
    for cred in creds:  # one pull secret may hold thousands of registries
        budget.add(f"image pull secret credential for {cred.server}",
                   size_of(cred.server) + size_of(cred.username) + size_of(cred.password))
    req.image_registry_credential = [eci.CreateContainerGroupRequestImageRegistryCredential(
        server=c.server, user_name=c.username, password=c.password) for c in creds] or None
    apply_dns(pod, ctx, req, notes)
    req.host_aliase = [eci.CreateContainerGroupRequestHostAliase(ip=h.ip,
                                                                 hostname=list(h.hostnames or []))
                       for h in spec.host_aliases or []] or None
    sysctls = spec.security_context.sysctls if spec.security_context is not None else None
    if sysctls:
        req.security_context = eci.CreateContainerGroupRequestSecurityContext(
            sysctl=[eci.CreateContainerGroupRequestSecurityContextSysctl(name=s.name,
                                                                         value=s.value)
                    for s in sysctls])
    if fields := unenforced_security(pod):
        notes.append(PodWarning("SecurityContextNotEnforced",
                                "ECI does not apply: " + ", ".join(fields)))
    _apply_cache(req, ctx.cache)
    apply_placement(req, parse_placement(annotations))
    # Last: the node's own container and volume, after every tenant one.
    apply_service_access(pod, ctx, req, notes, budget)
    return Translation(req, tuple(notes))


def _sidecar_warnings(pod: Any, sidecars: list[Any], notes: Warnings) -> None:
    if not sidecars:
        return
    inits = list(pod.spec.init_containers or [])
    first = next(i for i, c in enumerate(inits) if is_sidecar(c))
    later = [c.name for c in inits[first:] if not is_sidecar(c)]
    names = ", ".join(c.name for c in sidecars)
    if later:
        notes.append(PodWarning("SidecarStartOrder", (
            f"sidecar(s) {names} start with the app containers on ECI, after init "
            f"container(s) {', '.join(later)} that the pod orders after them")))
    if (pod.spec.restart_policy or "Always") != "Always":
        notes.append(PodWarning("SidecarNotStopped", (
            f"sidecar(s) {names} run as ECI app containers: ECI does not stop them when the "
            "pod's other containers end, so the pod ends only when they exit too")))


def _apply_cache(req: Any, cache: CacheDecision) -> None:
    if cache.image_snapshot_id:
        req.image_snapshot_id = cache.image_snapshot_id
    elif cache.auto_match_image_cache:
        req.auto_match_image_cache = True


def unsupported_volume_types(pod: Any) -> Sequence[str]:
    """Names and types of volumes ECI cannot provide (for messages before a full translate)."""
    from vk_eci.cloud.translation.volumes import SUPPORTED

    return [f"{v.name} ({volume_type(v)})" for v in pod.spec.volumes or []
            if volume_type(v) not in SUPPORTED]
