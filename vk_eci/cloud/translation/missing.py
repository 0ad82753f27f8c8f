"""A referenced Secret/ConfigMap (or key) that is absent, named with the virtual-kubelet's reasons.

Mandatory: :class:`MissingDependency` carrying the event reason (``MandatorySecretNotFound``,
``MandatoryConfigMapKeyNotFound``, ``FailedToReadMandatorySecret``…); the pod stays Pending and is
retried, as the kubelet retries ``CreateContainerConfigError``. Optional: the reference is skipped
and a :class:`PodWarning` (``OptionalConfigMapNotFound``…) says so, never silently.
"""

from __future__ import annotations

from vk_eci.cloud.api.errors import MissingDependency
from vk_eci.cloud.translation.context import PodWarning, TranslateContext, Warnings


def absent(ctx: TranslateContext, kind: str, name: str, needed_by: str, *, optional: bool,
           notes: Warnings, key: str | None = None) -> None:
    """Report that ``kind`` (``"secret"`` or ``"config map"``) ``name`` (or its ``key``) is
    absent for ``needed_by``: raise when mandatory, add a warning when optional."""
    word = "Secret" if kind == "secret" else "ConfigMap"
    mode = "Optional" if optional else "Mandatory"
    unreadable = ctx.unreadable_secrets if kind == "secret" else ctx.unreadable_config_maps
    if key is not None:
        reason, thing = f"{mode}{word}KeyNotFound", f"key {key} of {kind} {name}"
    elif name in unreadable:
        reason, thing = f"FailedToRead{mode}{word}", f"{kind} {name}"
    else:
        reason, thing = f"{mode}{word}NotFound", f"{kind} {name}"
    if not optional:
        raise MissingDependency(thing, f"{needed_by} needs it", event=reason)
    what = "could not be read" if reason.startswith("FailedToRead") else "not found"
    notes.append(PodWarning(reason, f"{thing} {what}: optional for {needed_by}, skipped"))
