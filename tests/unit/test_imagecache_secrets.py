"""Which pull secrets an ImageCache object may use (cluster/imagecaches/secrets.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vk_eci.cluster.imagecaches.secrets import (
    REVIEWED_ANNOTATION,
    Requester,
    SecretPolicy,
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
