"""Probes and lifecycle hooks → ECI's probe and handler fields.

ECI has readiness and liveness probes but no startup probe: a ``startupProbe`` is folded into the
liveness probe's initial delay (liveness then starts no earlier than the startup probe could have
given up: ``initialDelaySeconds + periodSeconds * failureThreshold``), with a
``StartupProbeNotSupported`` Warning saying so. Without a liveness probe it only gated readiness
and liveness, so it is dropped, with the same Warning.
"""

from __future__ import annotations

from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.translation.context import PodWarning, Warnings


def port_number(container: Any, port: Any, what: str) -> int:
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.ports or []:
        if p.name == text:
            return int(p.container_port)
    raise InvalidInput(f"container {container.name} {what}", f"no port named {text!r}")


def probe_model(container: Any, probe: Any, kind: str, prefix: str) -> Any:
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
            port=port_number(container, probe.http_get.port, what),
            scheme=probe.http_get.scheme or "HTTP")
    elif probe.tcp_socket is not None:
        out.tcp_socket = getattr(eci, f"{prefix}{kind.capitalize()}ProbeTcpSocket")(
            port=port_number(container, probe.tcp_socket.port, what))
    else:
        raise InvalidInput(f"container {container.name} {what}",
                           "only exec, httpGet and tcpSocket probes are supported on ECI")
    return out


def apply_lifecycle(model: Any, container: Any) -> None:
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
                    port_number(container, hook.http_get.port, f"{field} hook"))
            setattr(model, f"{base}_http_get_scheme", hook.http_get.scheme or "HTTP")
            if hook.http_get.host:
                setattr(model, f"{base}_http_get_host", hook.http_get.host)
        elif hook.tcp_socket is not None:
            setattr(model, f"{base}_tcp_socket_port",
                    port_number(container, hook.tcp_socket.port, f"{field} hook"))
        else:
            raise InvalidInput(f"container {container.name} {field} hook",
                               "only exec, httpGet and tcpSocket hooks are supported on ECI")




def _startup_window(startup: Any) -> int:
    """Seconds until a failing startup probe gives up (Kubernetes defaults: period 10, 3 tries)."""
    return int((startup.initial_delay_seconds or 0)
               + (startup.period_seconds or 10) * (startup.failure_threshold or 3))


def apply_probes(model: Any, container: Any, prefix: str, notes: Warnings) -> None:
    """Readiness and liveness probes of an app container, with its startup probe folded in."""
    model.readiness_probe = probe_model(container, container.readiness_probe, "readiness", prefix)
    model.liveness_probe = probe_model(container, container.liveness_probe, "liveness", prefix)
    startup = container.startup_probe
    if startup is None:
        return
    window = _startup_window(startup)
    if model.liveness_probe is None:
        notes.append(PodWarning("StartupProbeNotSupported", (
            f"container {container.name}: ECI has no startup probe and the container has no "
            "liveness probe to delay; the startup probe is not run")))
        return
    own = model.liveness_probe.initial_delay_seconds or 0
    model.liveness_probe.initial_delay_seconds = max(own, window)
    notes.append(PodWarning("StartupProbeNotSupported", (
        f"container {container.name}: ECI has no startup probe; the liveness probe starts after "
        f"{max(own, window)}s instead (the startup probe's initialDelaySeconds + periodSeconds "
        "x failureThreshold)")))
