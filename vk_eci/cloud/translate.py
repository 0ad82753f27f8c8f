"""Pod → ``CreateContainerGroupRequest`` (SPEC §5), a pure function of the pod and its context.

:func:`check_supported` refuses pods the virtual node cannot run (DaemonSet-owned, host
namespaces, hostPath, privileged); :func:`pod_to_request` builds the request. Both raise
:class:`InvalidInput` naming the thing and the reason (and :class:`MissingDependency` when a
referenced secret or config map is absent); nothing here ever echoes a secret's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud import naming
from vk_eci.cloud.context import CacheDecision, TranslateContext
from vk_eci.cloud.credentials import registry_credentials
from vk_eci.cloud.env import EnvVar, container_env, expand
from vk_eci.cloud.errors import InvalidInput
from vk_eci.cloud.placement_annotations import apply_placement, parse_placement
from vk_eci.cloud.specs import (
    choose_spec,
    container_gpus,
    container_resources,
    use_specs_of,
)
from vk_eci.cloud.volumes import translate_volumes, volume_type

MAX_CONTAINERS = 20
_DNS_POLICIES = {"ClusterFirst": "ClusterFirst", "ClusterFirstWithHostNet": "ClusterFirst",
                 "Default": "Default", "None": "None"}


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
        if vol.host_path is not None:
            raise InvalidInput(f"volume {vol.name} (hostPath)",
                               "hostPath volumes are not supported on a virtual node")
    for c in list(spec.init_containers or []) + list(spec.containers or []):
        sc = c.security_context
        if sc is not None and sc.privileged:
            raise InvalidInput(f"container {c.name}",
                               "privileged containers are not supported on ECI")
    if not spec.containers:
        raise InvalidInput(f"pod {_pod_name(pod)}", "has no containers")
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


def _port_number(container: Any, port: Any, what: str) -> int:
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.ports or []:
        if p.name == text:
            return int(p.container_port)
    raise InvalidInput(f"container {container.name} {what}", f"no port named {text!r}")


def _probe(container: Any, probe: Any, kind: str, prefix: str) -> Any:
    if probe is None:
        return None
    what = f"{kind} probe"
    model = getattr(eci, f"{prefix}{kind.capitalize()}Probe")
    out = model(initial_delay_seconds=probe.initial_delay_seconds,
                period_seconds=probe.period_seconds, timeout_seconds=probe.timeout_seconds,
                success_threshold=probe.success_threshold,
                failure_threshold=probe.failure_threshold)
    if probe._exec is not None:
        out.exec = getattr(eci, f"{prefix}{kind.capitalize()}ProbeExec")(
            command=list(probe._exec.command or []))
    elif probe.http_get is not None:
        out.http_get = getattr(eci, f"{prefix}{kind.capitalize()}ProbeHttpGet")(
            path=probe.http_get.path or "/",
            port=_port_number(container, probe.http_get.port, what),
            scheme=probe.http_get.scheme or "HTTP")
    elif probe.tcp_socket is not None:
        out.tcp_socket = getattr(eci, f"{prefix}{kind.capitalize()}ProbeTcpSocket")(
            port=_port_number(container, probe.tcp_socket.port, what))
    else:
        raise InvalidInput(f"container {container.name} {what}",
                           "only exec, httpGet and tcpSocket probes are supported on ECI")
    return out


def _lifecycle(model: Any, container: Any) -> None:
    lc = container.lifecycle
    if lc is None:
        return
    for hook, field in ((lc.post_start, "post_start"), (lc.pre_stop, "pre_stop")):
        if hook is None:
            continue
        base = f"lifecycle_{field}_handler"
        if hook._exec is not None:
            setattr(model, f"{base}_exec", list(hook._exec.command or []))
        elif hook.http_get is not None:
            setattr(model, f"{base}_http_get_path", hook.http_get.path or "/")
            setattr(model, f"{base}_http_get_port",
                    _port_number(container, hook.http_get.port, f"{field} hook"))
            setattr(model, f"{base}_http_get_scheme", hook.http_get.scheme or "HTTP")
            if hook.http_get.host:
                setattr(model, f"{base}_http_get_host", hook.http_get.host)
        elif hook.tcp_socket is not None:
            setattr(model, f"{base}_tcp_socket_port",
                    _port_number(container, hook.tcp_socket.port, f"{field} hook"))
        else:
            raise InvalidInput(f"container {container.name} {field} hook",
                               "only exec, httpGet and tcpSocket hooks are supported on ECI")


def _security(model: Any, container: Any, pod_sc: Any, prefix: str) -> None:
    sc = container.security_context

    def pick(attr: str) -> Any:
        value = getattr(sc, attr, None) if sc is not None else None
        if value is None and pod_sc is not None:
            value = getattr(pod_sc, attr, None)
        return value

    run_as_user, run_as_group = pick("run_as_user"), pick("run_as_group")
    read_only = getattr(sc, "read_only_root_filesystem", None) if sc is not None else None
    caps = sc.capabilities.add if sc is not None and sc.capabilities is not None else None
    if run_as_user is not None or read_only is not None or caps:
        model.security_context = getattr(eci, f"{prefix}SecurityContext")(
            run_as_user=run_as_user, read_only_root_filesystem=read_only)
        if caps:
            model.security_context.capability = getattr(
                eci, f"{prefix}SecurityContextCapability")(add=list(caps))
    if prefix == "CreateContainerGroupRequestContainer":
        # Only app containers have these fields in ECI's API.
        model.security_context_run_as_group = run_as_group
        non_root = pick("run_as_non_root")
        model.security_context_run_as_non_root = non_root


# securityContext fields ECI's API has no place for (per container, and per pod). They are not
# refused (hardened pods set them routinely) but never dropped unsaid: see unenforced_security.
_CONTAINER_ONLY_K8S = (("allow_privilege_escalation", "allowPrivilegeEscalation"),
                       ("seccomp_profile", "seccompProfile"),
                       ("se_linux_options", "seLinuxOptions"),
                       ("app_armor_profile", "appArmorProfile"), ("proc_mount", "procMount"))
_POD_ONLY_K8S = (("fs_group", "fsGroup"), ("supplemental_groups", "supplementalGroups"),
                 ("sysctls", "sysctls"), ("seccomp_profile", "seccompProfile"),
                 ("se_linux_options", "seLinuxOptions"), ("app_armor_profile", "appArmorProfile"))


def unenforced_security(pod: Any) -> list[str]:
    """The securityContext settings of ``pod`` that ECI will not apply, as readable paths."""
    out: list[str] = []
    pod_sc = pod.spec.security_context
    for attr, name in _POD_ONLY_K8S:
        if pod_sc is not None and getattr(pod_sc, attr, None):
            out.append(f"pod securityContext.{name}")
    init = [(c, True) for c in pod.spec.init_containers or []]
    for container, is_init in [*init, *((c, False) for c in pod.spec.containers or [])]:
        sc = container.security_context
        if sc is None:
            continue
        fields = [name for attr, name in _CONTAINER_ONLY_K8S
                  if getattr(sc, attr, None) not in (None, False, "Default")]
        if sc.capabilities is not None and sc.capabilities.drop:
            fields.append("capabilities.drop")
        if is_init:
            # Only app containers have these in ECI's API.
            fields += [name for attr, name in (("run_as_group", "runAsGroup"),
                                               ("run_as_non_root", "runAsNonRoot"))
                       if getattr(sc, attr, None) is not None]
        out += [f"container {container.name} securityContext.{f}" for f in fields]
    return out


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


def translate_container(pod: Any, container: Any, ctx: TranslateContext, *, init: bool,
                        group_cpu: float | None, group_memory: float | None) -> Any:
    """One ECI container (``init`` selects the init-container model)."""
    prefix = ("CreateContainerGroupRequestInitContainer" if init
              else "CreateContainerGroupRequestContainer")
    env = container_env(pod, container, ctx, group_cpu, group_memory)
    values = {v.name: v.value for v in env if v.value is not None}
    model = getattr(eci, prefix)(
        name=container.name, image=container.image,
        command=[expand(c, values.get) for c in container.command or []] or None,
        arg=[expand(a, values.get) for a in container.args or []] or None,
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
    _security(model, container, pod.spec.security_context, prefix)
    if not init:
        model.readiness_probe = _probe(container, container.readiness_probe, "readiness", prefix)
        model.liveness_probe = _probe(container, container.liveness_probe, "liveness", prefix)
        if container.startup_probe is not None:
            raise InvalidInput(f"container {container.name} startup probe",
                               "ECI has no startup probe")
        _lifecycle(model, container)
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


def _dns(pod: Any, req: Any) -> None:
    spec = pod.spec
    if spec.dns_policy:
        req.dns_policy = _DNS_POLICIES.get(spec.dns_policy, spec.dns_policy)
    cfg = spec.dns_config
    if cfg is not None:
        req.dns_config = eci.CreateContainerGroupRequestDnsConfig(
            name_server=list(cfg.nameservers or []) or None,
            search=list(cfg.searches or []) or None,
            option=[eci.CreateContainerGroupRequestDnsConfigOption(name=o.name, value=o.value)
                    for o in cfg.options or []] or None)


def _group_name_for(pod: Any) -> str:
    return naming.group_name(pod.metadata.namespace or "default", pod.metadata.name)


def pod_to_request(pod: Any, ctx: TranslateContext) -> Any:
    """The ``CreateContainerGroupRequest`` for ``pod`` (``ClientToken`` = pod UID)."""
    check_supported(pod)
    _check_mounts(pod)
    spec, meta = pod.spec, pod.metadata
    annotations = meta.annotations or {}
    size = choose_spec(spec.containers, spec.init_containers or [],
                       use_specs_of(annotations))
    req = eci.CreateContainerGroupRequest(
        region_id=ctx.region_id, zone_id=ctx.zone_id or None,
        v_switch_id=",".join(ctx.vswitch_ids) or None,
        security_group_id=ctx.security_group_id or None,
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
    req.container = [translate_container(pod, c, ctx, init=False, group_cpu=size.cpu,
                                         group_memory=size.memory) for c in spec.containers]
    req.init_container = [translate_container(pod, c, ctx, init=True, group_cpu=size.cpu,
                                              group_memory=size.memory)
                          for c in spec.init_containers or []] or None
    req.volume = translate_volumes(pod, ctx, size.cpu, size.memory) or None
    creds = registry_credentials(
        [s.name for s in spec.image_pull_secrets or [] if s.name], ctx.secrets)
    req.image_registry_credential = [eci.CreateContainerGroupRequestImageRegistryCredential(
        server=c.server, user_name=c.username, password=c.password) for c in creds] or None
    _dns(pod, req)
    req.host_aliase = [eci.CreateContainerGroupRequestHostAliase(ip=h.ip,
                                                                 hostname=list(h.hostnames or []))
                       for h in spec.host_aliases or []] or None
    sysctls = spec.security_context.sysctls if spec.security_context is not None else None
    if sysctls:
        req.security_context = eci.CreateContainerGroupRequestSecurityContext(
            sysctl=[eci.CreateContainerGroupRequestSecurityContextSysctl(name=s.name,
                                                                         value=s.value)
                    for s in sysctls])
    _apply_cache(req, ctx.cache)
    apply_placement(req, parse_placement(annotations))
    return req


def _apply_cache(req: Any, cache: CacheDecision) -> None:
    if cache.image_snapshot_id:
        req.image_snapshot_id = cache.image_snapshot_id
    elif cache.auto_match_image_cache:
        req.auto_match_image_cache = True


def unsupported_volume_types(pod: Any) -> Sequence[str]:
    """Names and types of volumes ECI cannot provide (for messages before a full translate)."""
    from vk_eci.cloud.volumes import SUPPORTED

    return [f"{v.name} ({volume_type(v)})" for v in pod.spec.volumes or []
            if volume_type(v) not in SUPPORTED]
