"""Which pull secrets an ImageCache object may use (docs/SECURITY.md, "ImageCache pull secrets").

An ImageCache is cluster-scoped and names secrets as ``namespace:name``; the controller reads
them with the node's rights and sends their credentials to ``CreateImageCache``. So a secret is
used only when the object's author may read it:

- at admission, the webhook asks the API server, for the requesting user, a
  ``SubjectAccessReview`` of ``get`` on that secret (:func:`secret_review`,
  :func:`may_use_secret`) and writes the refs that passed in the annotation
  :data:`REVIEWED_ANNOTATION` (:func:`reviewed_refs`: on an update, refs already reviewed and
  still named stay; new ones need the updater's review; whatever the author wrote there is
  replaced);
- the controller has no admission information: it uses a secret only when its namespace is one
  the operator shares with every ImageCache (``--imagecache-shared-pull-namespaces``) or, when
  the operator says the webhook runs (``--imagecache-trust-admission``), when the annotation
  lists it. Default: neither, so every secret is refused until the operator chooses;
- an object the node's own cache advisor wrote for one namespace's private images
  (docs/ADVISOR.md, "Private images") may use the secrets the advisor granted it, in process
  (:class:`AdvisorGrants`): never on the strength of a label or annotation alone, which anyone
  who may create ImageCache objects could write.

Whatever the reason a secret cannot be used (not reviewed, missing, unreadable, malformed), the
object's status and events say only that it is *not usable*: the author learns nothing of
another namespace's secrets. The precise reason is a log line for the operator.
"""

from __future__ import annotations

import asyncio
import json
import secrets as tokens
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REVIEWED_ANNOTATION = "eci.alibabacloud.com/pull-secrets-reviewed"
# The advisor's one-time value on an object it creates with pull secrets: it ties the object to
# the grant until its UID is known (a same-named object made by someone else cannot carry it).
GRANT_ANNOTATION = "eci.vk-eci.io/advisor-grant"
NOT_USABLE = ("not usable (it must exist, hold registry credentials and be one this object "
              "may use; see docs/SECURITY.md)")


@dataclass(frozen=True)
class SecretPolicy:
    """The controller's side (operator settings)."""

    shared_namespaces: frozenset[str] = frozenset()
    trust_admission: bool = False


def reviewed_of(annotations: Mapping[str, str] | None) -> frozenset[str]:
    """The refs the admission webhook recorded (empty when absent or malformed)."""
    raw = (annotations or {}).get(REVIEWED_ANNOTATION)
    if not raw:
        return frozenset()
    try:
        refs = json.loads(raw)
    except ValueError:
        return frozenset()
    if not isinstance(refs, list):
        return frozenset()
    return frozenset(r for r in refs if isinstance(r, str))


def usable(ref: str, namespace: str, policy: SecretPolicy, reviewed: frozenset[str]) -> bool:
    """Whether the controller may read secret ``ref`` (``namespace:name``) for the object."""
    if namespace in policy.shared_namespaces:
        return True
    return policy.trust_admission and ref in reviewed


@dataclass
class Grant:
    refs: frozenset[str]
    images: frozenset[str]
    nonce: str
    uid: str = ""


class AdvisorGrants:
    """The pull secrets this process's cache advisor granted its own ImageCache objects.

    The advisor :meth:`offer` s a grant before it creates an object (a one-time value it writes
    in :data:`GRANT_ANNOTATION`), :meth:`bind` s it to the created object's UID, :meth:`renew` s
    it for an object it already owns (after a restart) and :meth:`revoke` s it when the object
    is not, or no longer, its own. The controller asks :meth:`allows` for each secret: only
    for the granted object, the granted secrets and images among the granted ones.
    ``listeners`` are called with the object's name when a grant is bound or renewed (the
    controller queues it again).
    """

    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}
        self.listeners: list[Callable[[str], None]] = []
        # Whether this process's ImageCache controller leads now (set by the controller): only
        # then can a grant reach the controller that builds the cache. Another replica or
        # another fleet member may lead it, and it knows no grant of ours.
        self.controller_leading = False

    def offer(self, name: str, refs: Iterable[str], images: Iterable[str]) -> str:
        nonce = tokens.token_hex(16)
        self._grants[name] = Grant(frozenset(refs), frozenset(images), nonce)
        return nonce

    def bind(self, name: str, uid: str) -> None:
        grant = self._grants.get(name)
        if grant is not None and uid:
            grant.uid = uid
            self._changed(name)

    def renew(self, name: str, uid: str, refs: Iterable[str], images: Iterable[str]) -> None:
        grant = Grant(frozenset(refs), frozenset(images), "", uid)
        if self._grants.get(name) != grant:
            self._grants[name] = grant
            self._changed(name)

    def revoke(self, name: str) -> None:
        self._grants.pop(name, None)

    def allows(self, name: str, uid: str, nonce: str, ref: str, images: Iterable[str]) -> bool:
        grant = self._grants.get(name)
        if grant is None or ref not in grant.refs or not set(images) <= grant.images:
            return False
        if grant.uid:
            return grant.uid == uid
        return bool(nonce) and tokens.compare_digest(nonce, grant.nonce)

    def _changed(self, name: str) -> None:
        for listener in self.listeners:
            listener(name)


# -- the admission side (called by the webhook) -----------------------------------------------

@dataclass(frozen=True)
class Requester:
    """The user of an admission request (``request.userInfo``)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)


def secret_review(user: Requester, namespace: str, name: str) -> dict[str, Any]:
    """The ``SubjectAccessReview`` asking whether ``user`` may ``get`` secret
    ``namespace/name``: the body to POST to ``authorization.k8s.io/v1``."""
    spec: dict[str, Any] = {
        "user": user.username, "groups": list(user.groups),
        "resourceAttributes": {"namespace": namespace, "verb": "get", "group": "",
                               "resource": "secrets", "name": name}}
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": spec}


Review = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]


async def may_use_secret(review: Review, user: Requester, ref: str,
                         shared_namespaces: Iterable[str] = ()) -> bool:
    """Whether ``user`` may name secret ``ref`` in an ImageCache: its namespace is shared with
    every ImageCache, or the API server allows ``user`` to read it. ``review`` POSTs a
    ``SubjectAccessReview`` body and returns the answer (its ``status``). Any error or doubt
    is a refusal."""
    namespace, sep, name = ref.partition(":")
    if not sep or not namespace or not name:
        return False
    if namespace in set(shared_namespaces):
        return True
    try:
        answer = await review(secret_review(user, namespace, name))
    except Exception:
        return False
    status = answer.get("status") if "status" in answer else answer
    return bool(isinstance(status, Mapping) and status.get("allowed") is True
                and not status.get("denied"))


def reviewed_refs(named: Sequence[str], previous: frozenset[str],
                  passed: Callable[[str], bool]) -> list[str]:
    """The annotation's value for an object naming ``named``: refs the previous version's
    review already passed stay, others only if ``passed(ref)`` (the requester's review)."""
    return sorted({r for r in named if r in previous or passed(r)})


def reviewed_annotation(refs: Iterable[str]) -> dict[str, str]:
    return {REVIEWED_ANNOTATION: json.dumps(sorted(set(refs)))}


def requester_of(user_info: Mapping[str, Any]) -> Requester:
    """The requesting user of an AdmissionReview (its ``request.userInfo``)."""
    extra = user_info.get("extra") or {}
    return Requester(username=str(user_info.get("username") or ""),
                     uid=str(user_info.get("uid") or ""),
                     groups=tuple(str(g) for g in user_info.get("groups") or []),
                     extra={str(k): [str(x) for x in v or []] for k, v in extra.items()})


def _named(obj: Mapping[str, Any] | None) -> list[str]:
    refs = ((obj or {}).get("spec") or {}).get("imagePullSecrets") or []
    return [r for r in dict.fromkeys(refs) if isinstance(r, str)] if isinstance(refs, list) else []


async def admission_verdict(review: Review, request: Mapping[str, Any],
                            shared_namespaces: Iterable[str] = ()
                            ) -> tuple[str | None, dict[str, str]]:
    """The webhook's judgement of an ImageCache CREATE or UPDATE: the refusal (naming the
    secrets the requester may not use, and nothing about them), or None; and the annotations
    to write, :data:`REVIEWED_ANNOTATION` computed here whatever the author wrote.

    Only refs this request adds are reviewed, for its requester: a ref the previous version
    already named keeps its previous review (reviewed or not), so the controller's own
    metadata updates, made with the node's rights, neither fail nor review anything."""
    old = request.get("oldObject") if request.get("operation") == "UPDATE" else None
    named, before = _named(request.get("object")), set(_named(old))
    previous = reviewed_of(((old or {}).get("metadata") or {}).get("annotations")) & before
    new = [r for r in named if r not in before]
    user = requester_of(request.get("userInfo") or {})
    shared = frozenset(shared_namespaces)
    answers = await asyncio.gather(*(may_use_secret(review, user, r, shared) for r in new))
    passed = {r for r, ok in zip(new, answers, strict=True) if ok}
    refused = [r for r in new if r not in passed]
    message = None
    if refused:
        message = (f"image pull secret{'s' if len(refused) > 1 else ''} "
                   f"{', '.join(refused)}: {NOT_USABLE}")
    return message, reviewed_annotation(reviewed_refs(named, frozenset(previous),
                                                      passed.__contains__))
