"""A pod's securityContext → ECI's security fields, and what ECI has no place for.

Settings ECI cannot apply are not refused (hardened pods set them routinely) but never dropped
unsaid: :func:`unenforced_security` names them for a ``SecurityContextNotEnforced`` Warning.
"""

from __future__ import annotations

from typing import Any

from alibabacloud_eci20180808 import models as eci


def apply_security(model: Any, container: Any, pod_sc: Any, prefix: str) -> None:
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


