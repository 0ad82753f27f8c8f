"""Which pull secrets an ImageCache object may use (cluster/imagecaches/secrets.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vk_eci.cluster.imagecaches.secrets import (
    NOT_USABLE,
    REVIEWED_ANNOTATION,
    Requester,
    SecretPolicy,
    admission_verdict,
    may_use_secret,
    reviewed_annotation,
    reviewed_of,
    reviewed_refs,
    secret_review,
    usable,
)
from vk_eci.cluster.imagecaches.spec import spec_from_object


def test_default_policy_refuses_every_secret_even_a_forged_review() -> None:
    forged = reviewed_of(reviewed_annotation(["team-a:regcred"]))
    assert not usable("team-a:regcred", "team-a", SecretPolicy(), forged)
    assert usable("team-a:regcred", "team-a", SecretPolicy(trust_admission=True), forged)
    assert not usable("team-a:other", "team-a", SecretPolicy(trust_admission=True), forged)
    shared = SecretPolicy(shared_namespaces=frozenset({"registry-creds"}))
    assert usable("registry-creds:pull", "registry-creds", shared, frozenset())


def test_a_malformed_annotation_reviews_nothing() -> None:
    for raw in ("", "team-a:regcred", '{"team-a:regcred": 1}', "[1, 2]"):
        assert reviewed_of({REVIEWED_ANNOTATION: raw}) == frozenset()


def test_the_object_carries_its_reviewed_refs() -> None:
    spec = spec_from_object({"metadata": {"name": "c", "annotations": reviewed_annotation(
        ["a:x"])}, "spec": {"images": ["nginx"], "imagePullSecrets": ["a:x"]}})
    assert spec.reviewed == frozenset({"a:x"})


def test_the_review_asks_get_on_the_one_secret_for_the_user() -> None:
    body = secret_review(Requester("alice", uid="u1", groups=("g",), extra={"k": ["v"]}),
                         "team-a", "regcred")
    assert body["kind"] == "SubjectAccessReview"
    assert body["spec"] == {"user": "alice", "uid": "u1", "groups": ["g"], "extra": {"k": ["v"]},
                            "resourceAttributes": {"namespace": "team-a", "verb": "get",
                                                   "group": "", "resource": "secrets",
                                                   "name": "regcred"}}


async def test_may_use_secret_follows_the_answer_and_refuses_on_doubt() -> None:
    asked: list[dict[str, Any]] = []

    def answering(answer: Mapping[str, Any] | Exception) -> Any:
        async def review(body: dict[str, Any]) -> Mapping[str, Any]:
            asked.append(body)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return review

    alice = Requester("alice")
    assert await may_use_secret(answering({"status": {"allowed": True}}), alice, "a:x")
    assert not await may_use_secret(answering({"status": {"allowed": False}}), alice, "a:x")
    assert not await may_use_secret(answering({"status": {"allowed": True, "denied": True}}),
                                    alice, "a:x")
    assert not await may_use_secret(answering(RuntimeError("down")), alice, "a:x")
    assert not await may_use_secret(answering({"status": {"allowed": True}}), alice, "nocolon")
    before = len(asked)
    assert await may_use_secret(answering({"status": {"allowed": False}}), alice, "s:x",
                                shared_namespaces=["s"])
    assert len(asked) == before  # a shared namespace needs no review


def test_an_update_keeps_reviewed_refs_and_reviews_new_ones_for_the_updater() -> None:
    previous = frozenset({"a:x"})
    assert reviewed_refs(["a:x", "b:y"], previous, lambda ref: False) == ["a:x"]
    assert reviewed_refs(["a:x", "b:y"], previous, lambda ref: ref == "b:y") == ["a:x", "b:y"]
    assert reviewed_refs(["b:y"], previous, lambda ref: False) == []


def _by_user(readers: dict[str, set[str]]) -> Any:
    """A review answering as RBAC would: ``readers[user]`` are the refs that user may get."""
    asked: list[str] = []

    async def review(body: dict[str, Any]) -> Mapping[str, Any]:
        attrs = body["spec"]["resourceAttributes"]
        ref = f"{attrs['namespace']}:{attrs['name']}"
        asked.append(f"{body['spec']['user']}->{ref}")
        return {"status": {"allowed": ref in readers.get(body["spec"]["user"], set())}}
    review.asked = asked  # type: ignore[attr-defined]
    return review


def _request(op: str, user: str, refs: list[str], old_refs: list[str] | None = None,
             annotations: dict[str, str] | None = None,
             old_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    def obj(r: list[str], a: dict[str, str] | None) -> dict[str, Any]:
        return {"metadata": {"name": "c", "annotations": a or {}},
                "spec": {"images": ["nginx"], "imagePullSecrets": r}}
    out = {"operation": op, "userInfo": {"username": user, "groups": ["system:authenticated"]},
           "object": obj(refs, annotations)}
    if old_refs is not None:
        out["oldObject"] = obj(old_refs, old_annotations)
    return out


async def test_admission_reviews_the_requester_and_overwrites_a_forged_annotation() -> None:
    review = _by_user({"alice": {"team-a:regcred"}})
    forged = reviewed_annotation(["team-a:regcred", "team-a:other"])
    refused, annotations = await admission_verdict(
        review, _request("CREATE", "alice", ["team-a:regcred"], annotations=forged))
    assert refused is None and annotations == reviewed_annotation(["team-a:regcred"])
    refused, annotations = await admission_verdict(
        review, _request("CREATE", "bob", ["team-a:regcred"], annotations=forged))
    assert refused == f"image pull secret team-a:regcred: {NOT_USABLE}"
    assert annotations == reviewed_annotation([])
    refused, _ = await admission_verdict(
        review, _request("CREATE", "bob", ["team-a:nope", "s:x"]), shared_namespaces=["s"])
    assert refused == f"image pull secret team-a:nope: {NOT_USABLE}"


async def test_an_update_reviews_only_the_refs_it_adds_for_its_requester() -> None:
    review = _by_user({"node": {"team-a:regcred", "team-b:other"}, "alice": {"team-a:new"}})
    before = reviewed_annotation(["team-a:regcred"])
    # The controller (the node, who may read everything) patches metadata: nothing changes,
    # nothing is reviewed, and a ref never reviewed stays unreviewed.
    refused, annotations = await admission_verdict(review, _request(
        "UPDATE", "node", ["team-a:regcred", "team-b:other"], ["team-a:regcred", "team-b:other"],
        old_annotations=before))
    assert refused is None and annotations == before and review.asked == []
    refused, annotations = await admission_verdict(review, _request(
        "UPDATE", "alice", ["team-a:regcred", "team-a:new"], ["team-a:regcred"],
        annotations=reviewed_annotation(["team-b:other"]), old_annotations=before))
    assert refused is None
    assert annotations == reviewed_annotation(["team-a:regcred", "team-a:new"])
    assert review.asked == ["alice->team-a:new"]
